package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distributed-counter/distributed-counter/internal/wire"
)

// Compose drives one Compose project through the docker and compose CLIs.
type Compose struct {
	// Command is the compose CLI: ["docker", "compose"] or ["docker-compose"].
	Command []string
	File    string
	Project string
	// Env is the environment of every compose call; later entries win.
	Env []string
}

// Container is one container of a compose service.
type Container struct {
	ID   string
	Name string
	// Number is the replica number compose gave it (counter_1, counter_2...).
	Number int
	// Hostname is the container's host name, which makes its counter's URL.
	Hostname string
	// CounterID is the id of the counter the container runs: the identity
	// of the data slot it claimed (CounterIDOf), which may change when it
	// restarts beside others.
	CounterID string
}

// PublicName is the name the public GET /counters lists the counter by,
// in a cluster whose token is token.
func (c Container) PublicName(token string) string { return wire.CounterName(c.CounterID, token) }

// CounterIDOf asks the counter in ct for its id (`counter status`).
func (c Compose) CounterIDOf(ctx context.Context, ct Container, binary string) (string, error) {
	out, err := c.Exec(ctx, ct, binary, "status")
	if err != nil {
		return "", err
	}
	var st wire.Status
	if err := json.Unmarshal(out, &st); err != nil {
		return "", fmt.Errorf("status of %s: %w", ct.Name, err)
	}
	if err := wire.CheckCounterID(st.ID); err != nil {
		return "", fmt.Errorf("status of %s: %w", ct.Name, err)
	}
	return st.ID, nil
}

// inspectFormat prints one line per container for parseContainers.
const inspectFormat = `{{.Id}}|{{.Name}}|{{index .Config.Labels "com.docker.compose.container-number"}}|{{.Config.Hostname}}`

func (c Compose) compose(ctx context.Context, args ...string) ([]byte, error) {
	full := append([]string{"-p", c.Project, "-f", c.File}, args...)
	return run(ctx, c.Env, append(slices.Clone(c.Command[1:]), full...), c.Command[0])
}

// run runs name with args and returns its standard output; a failure carries
// its standard error.
func run(ctx context.Context, env, args []string, name string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err,
			strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

func (c Compose) docker(ctx context.Context, args ...string) ([]byte, error) {
	return run(ctx, c.Env, args, "docker")
}

// Up starts the project with the given number of counters, in the background.
func (c Compose) Up(ctx context.Context, counters int) error {
	_, err := c.compose(ctx, "up", "-d", "--remove-orphans", "--scale", "counter="+strconv.Itoa(counters))
	return err
}

// Down removes the project's containers, networks and volumes.
func (c Compose) Down(ctx context.Context) error {
	_, err := c.compose(ctx, "down", "-v", "--remove-orphans", "-t", "5")
	return err
}

// Containers returns the containers of a service, ordered by replica number.
// Compose v2 lists running containers only: call it while they all run.
func (c Compose) Containers(ctx context.Context, service string) ([]Container, error) {
	out, err := c.compose(ctx, "ps", "-q", service)
	if err != nil {
		return nil, err
	}
	ids := strings.Fields(string(out))
	if len(ids) == 0 {
		return nil, nil
	}
	out, err = c.docker(ctx, append([]string{"inspect", "-f", inspectFormat}, ids...)...)
	if err != nil {
		return nil, err
	}
	return parseContainers(string(out))
}

// parseContainers reads docker inspect's inspectFormat lines, ordered by
// replica number.
func parseContainers(out string) ([]Container, error) {
	var cs []Container
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) != 4 {
			return nil, fmt.Errorf("docker inspect line %q: want 4 fields", line)
		}
		n, err := strconv.Atoi(f[2])
		if err != nil {
			return nil, fmt.Errorf("docker inspect line %q: container number: %w", line, err)
		}
		if f[0] == "" || f[3] == "" {
			return nil, fmt.Errorf("docker inspect line %q: no id or hostname", line)
		}
		cs = append(cs, Container{ID: f[0], Name: strings.TrimPrefix(f[1], "/"), Number: n, Hostname: f[3]})
	}
	slices.SortFunc(cs, func(a, b Container) int { return a.Number - b.Number })
	return cs, nil
}

// Stop stops a container, giving it timeout to shut down.
func (c Compose) Stop(ctx context.Context, ct Container, timeout time.Duration) error {
	_, err := c.docker(ctx, "stop", "-t", strconv.Itoa(int(timeout.Seconds())), ct.ID)
	return err
}

// Start starts a stopped container again: same id, same host name.
func (c Compose) Start(ctx context.Context, ct Container) error {
	_, err := c.docker(ctx, "start", ct.ID)
	return err
}

// PublishedPorts returns the container ports Docker publishes on the host
// for a container ("8080/tcp"), whatever it exposes.
func (c Compose) PublishedPorts(ctx context.Context, ct Container) ([]string, error) {
	out, err := c.docker(ctx, "inspect", "-f", `{{range $p, $b := .NetworkSettings.Ports}}{{if $b}}{{$p}} {{end}}{{end}}`, ct.ID)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
}

// Exec runs a command in a running container and returns its output.
func (c Compose) Exec(ctx context.Context, ct Container, args ...string) ([]byte, error) {
	return c.docker(ctx, append([]string{"exec", ct.ID}, args...)...)
}

// Logs returns the last n lines of the project's logs, all containers
// merged in time order.
func (c Compose) Logs(ctx context.Context, n int) (string, error) {
	out, err := c.compose(ctx, "logs", "--no-color", "--timestamps", "--tail="+strconv.Itoa(n))
	if err != nil {
		return "", err
	}
	return lastLines(mergeLogs(string(out)), n), nil
}

// mergeLogs orders compose's logs lines ("<container> | <timestamp> <line>"),
// which it prints container by container, by their timestamps. Lines without
// a timestamp keep their place relative to the line before them.
func mergeLogs(out string) string {
	type line struct {
		at   time.Time
		text string
	}
	var lines []line
	var last time.Time
	for l := range strings.Lines(out) {
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			continue
		}
		if _, rest, ok := strings.Cut(l, "| "); ok {
			ts, _, _ := strings.Cut(rest, " ")
			if at, err := time.Parse(time.RFC3339Nano, ts); err == nil {
				last = at
			}
		}
		lines = append(lines, line{at: last, text: l})
	}
	slices.SortStableFunc(lines, func(a, b line) int { return a.at.Compare(b.at) })
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return b.String()
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.SplitAfter(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "") + "\n"
}

// DownKeepingData removes the project's containers and network and keeps
// its volumes, like `make down`.
func (c Compose) DownKeepingData(ctx context.Context) error {
	_, err := c.compose(ctx, "down", "--remove-orphans", "-t", "5")
	return err
}

// Kill sends SIGKILL to every container at once, in one docker call.
func (c Compose) Kill(ctx context.Context, cts ...Container) error {
	args := []string{"kill", "-s", "KILL"}
	for _, ct := range cts {
		args = append(args, ct.ID)
	}
	_, err := c.docker(ctx, args...)
	return err
}
