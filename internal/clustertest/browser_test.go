package clustertest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/distributed-counter/distributed-counter/internal/clustertest"
)

// browser finds a Chromium to drive: $CHROME_PATH, else the usual names.
// Without one the test skips, saying so, unless $REQUIRE_BROWSER is set
// (.ci/run sets it after installing Debian's chromium), when it fails.
func browser(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROME_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("REQUIRE_BROWSER") != "" {
		t.Fatal("no Chromium found and REQUIRE_BROWSER is set: apt-get install chromium, or set CHROME_PATH")
	}
	t.Skip("SKIPPED: no Chromium on this machine (apt-get install chromium, or set CHROME_PATH); .ci/run installs it")
	return ""
}

// artifacts is where tests leave files for people to look at:
// $ARTIFACTS_DIR, else artifacts/ at the root of the repository.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "artifacts")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// TestStatusPage_InARealBrowser loads GET /status in headless Chromium
// against an in-process cluster: the page shows three live counters, one
// as dead once it is stopped, and live again once it is back, and it logs
// no console error or exception. When the coordinator is stopped, the page
// says it is unreachable and keeps the last data; it serves again once the
// coordinator is back; restarted while no counter answers, the coordinator
// recovers, and the page says that. It saves a screenshot of each step.
func TestStatusPage_InARealBrowser(t *testing.T) {
	exe := browser(t)
	// A dead counter stays known (not removed) while the page polls.
	c := startLive(t, clustertest.Options{RecoveryTries: 10_000})
	mustAdd(t, c, items("acme", "a", "b", "c")...)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // root in CI containers
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(actx)
	defer cancelTab()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	// Every console error or warning, uncaught exception and browser log
	// entry of that level (a failed fetch, a CSP violation) is a problem.
	var mu sync.Mutex
	var problems []string
	var coordinatorStopped atomic.Bool
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return // the browser has gone: the test has ended
			}
			// While the test has stopped the coordinator, the browser
			// logs the polls it cannot make: those are expected.
			failedPoll := strings.Contains(m.Text, "net::ERR_") && strings.HasSuffix(m.URL, "/status.json")
			if coordinatorStopped.Load() && failedPoll {
				continue
			}
			if m.IsException() || m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				mu.Unlock()
			}
		}
	}()

	dir := artifacts(t)
	shot := func(name string) {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, png, 0o644))
		t.Logf("screenshot: %s", path)
	}
	// waitFor polls a JavaScript condition in the page until it holds.
	waitFor := func(what, cond string) {
		t.Helper()
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(30*time.Second),
			chromedp.WithPollingInterval(100*time.Millisecond)))
		if err != nil {
			shot("status-page-failure.png")
			html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('main').innerText`))
			t.Fatalf("the page never showed %s: %v\n%s", what, err, html)
		}
	}
	rows := func(state string) string {
		return fmt.Sprintf(`document.querySelectorAll('#counters tbody tr[data-state=%q]').length`, state)
	}

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.Coordinator.URL+"/status")))
	waitFor("three live counters", rows("live")+` === 3 && document.querySelector('#phase').dataset.phase === 'serving'`)
	summary, err := chromedp.Run(ctx, chromedp.Text("#summary"))
	require.NoError(t, err)
	require.Contains(t, summary, "3 live")
	shot("status-page.png")

	victim := c.Counters[1]
	victim.Stop()
	waitFor("the stopped counter as dead", rows("dead")+` === 1 && `+rows("live")+` === 2`)
	waitFor("its death in the events", `document.querySelectorAll('#events li[data-kind="dead"]').length >= 1`)
	shot("status-page-dead.png")

	victim.Start(t)
	waitFor("it live again", rows("live")+` === 3 && `+rows("dead")+` === 0`)
	shot("status-page-back.png")

	// The coordinator goes away: the page says so, and keeps the last data.
	coordinatorStopped.Store(true)
	c.Coordinator.Stop()
	waitFor("the coordinator as unreachable", `document.querySelector('#phase').dataset.phase === 'unreachable' && `+
		`!document.querySelector('#banner').hidden && document.querySelector('#main').classList.contains('stale') && `+
		rows("live")+` === 3`)
	shot("status-page-unreachable.png")
	c.Coordinator.Start(t)
	waitFor("it serving again", `document.querySelector('#phase').dataset.phase === 'serving' && `+
		`document.querySelector('#banner').hidden && `+rows("live")+` === 3`)

	// A coordinator restarted while no counter holding the data answers
	// stays recovering (it answers 503 to clients): the page says so.
	for _, n := range c.Counters {
		n.Stop()
	}
	c.Coordinator.Stop()
	c.Coordinator.Start(t)
	waitFor("the coordinator recovering", `document.querySelector('#phase').dataset.phase === 'recovering' && `+
		`!document.querySelector('#banner').hidden && /recovering/.test(document.querySelector('#banner').textContent)`)
	shot("status-page-recovering.png")
	for _, n := range c.Counters {
		n.Start(t)
	}
	waitFor("it serving with every counter live", `document.querySelector('#phase').dataset.phase === 'serving' && `+
		`document.querySelector('#banner').hidden && `+rows("live")+` === 3`)
	coordinatorStopped.Store(false)

	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, problems, "the page logged errors")
}
