package chaos

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/bits"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Final is the state after the faults were healed and the cluster settled.
type Final struct {
	// Counts is the coordinator's count of each tenant.
	Counts map[string]int64
	// IDs holds, per tenant, the ids each counter holds (by counter name).
	IDs map[string]map[string][]string
}

// Violation is one broken guarantee.
type Violation struct {
	Check  string
	Tenant string
	Detail string
}

func (v Violation) String() string { return fmt.Sprintf("%s [%s]: %s", v.Check, v.Tenant, v.Detail) }

// Report is the verdict on one history.
type Report struct {
	Violations []Violation
	// Linearizable is porcupine's verdict; porcupine.Unknown means it timed
	// out: inconclusive, never a pass.
	Linearizable porcupine.CheckResult
	info         porcupine.LinearizationInfo
	model        porcupine.Model
}

// Visualize writes porcupine's HTML page of the history to path.
func (r Report) Visualize(path string) error {
	if r.model.Step == nil {
		return errors.New("no linearizability check ran: nothing to visualise")
	}
	return porcupine.VisualizePath(r.model, r.info, path)
}

// Check judges a history against the final state.
func Check(ops []Op, final Final, timeout time.Duration) Report {
	var r Report
	present := finalSets(final, &r)
	r.Violations = append(r.Violations, checkSets(ops, present)...)
	r.Violations = append(r.Violations, checkReads(ops)...)
	r.model, r.Linearizable, r.info = checkLinearizable(ops, present, timeout)
	switch r.Linearizable {
	case porcupine.Illegal:
		r.Violations = append(r.Violations, Violation{Check: "linearizability", Tenant: "*", Detail: "porcupine found no linearization"})
	case porcupine.Unknown:
		r.Violations = append(r.Violations, Violation{Check: "linearizability", Tenant: "*", Detail: "inconclusive: porcupine timed out"})
	}
	return r
}

// finalSets checks that every counter converged on the same ids and that
// the coordinator's count matches them, and returns the ids per tenant.
func finalSets(final Final, r *Report) map[string]map[string]bool {
	present := make(map[string]map[string]bool)
	for tenant, byNode := range final.IDs {
		var ref []string
		var refNode string
		for node, ids := range byNode {
			if refNode == "" || node < refNode {
				ref, refNode = ids, node
			}
		}
		for node, ids := range byNode {
			if !slices.Equal(ids, ref) {
				r.Violations = append(r.Violations, Violation{Check: "convergence", Tenant: tenant,
					Detail: fmt.Sprintf("%s holds %d ids, %s holds %d", node, len(ids), refNode, len(ref))})
			}
		}
		set := make(map[string]bool, len(ref))
		for _, id := range ref {
			set[id] = true
		}
		present[tenant] = set
		if n, ok := final.Counts[tenant]; ok && n != int64(len(ref)) {
			r.Violations = append(r.Violations, Violation{Check: "convergence", Tenant: tenant,
				Detail: fmt.Sprintf("coordinator counts %d, counters hold %d ids", n, len(ref))})
		}
	}
	return present
}

// checkSets is Jepsen's set check: every acknowledged id is in the final
// state, every id in it was attempted by an add not answered "nothing
// applied", and an add whose outcome is unknown took effect all or nothing.
func checkSets(ops []Op, present map[string]map[string]bool) []Violation {
	var out []Violation
	acked := make(map[string]map[string]bool)
	possible := make(map[string]map[string]bool)
	type tally struct{ present, total int }
	batches := make(map[int]*tally) // requests across tenants whose outcome is unknown
	for _, op := range ops {
		if op.Kind != Add || op.Outcome == Failed {
			continue
		}
		for _, id := range op.IDs {
			addID(possible, op.Tenant, id)
			if op.Outcome == OK {
				addID(acked, op.Tenant, id)
			}
		}
		if op.Outcome == Unknown {
			n := 0
			for _, id := range op.IDs {
				if present[op.Tenant][id] {
					n++
				}
			}
			if n != 0 && n != len(op.IDs) {
				out = append(out, Violation{Check: "atomic batch", Tenant: op.Tenant,
					Detail: fmt.Sprintf("%d of the ids %v are present", n, op.IDs)})
			}
			if op.Batch != 0 {
				if batches[op.Batch] == nil {
					batches[op.Batch] = &tally{}
				}
				batches[op.Batch].present += n
				batches[op.Batch].total += len(op.IDs)
			}
		}
	}
	for id, b := range batches {
		if b.present != 0 && b.present != b.total {
			out = append(out, Violation{Check: "atomic batch", Tenant: "*",
				Detail: fmt.Sprintf("request %d across tenants: %d of its %d ids are present", id, b.present, b.total)})
		}
	}
	for tenant, ids := range acked {
		if lost := missingFrom(ids, present[tenant]); len(lost) > 0 {
			out = append(out, Violation{Check: "lost", Tenant: tenant,
				Detail: fmt.Sprintf("%d acknowledged ids missing: %v", len(lost), head(lost))})
		}
	}
	for tenant, ids := range present {
		if unexpected := missingFrom(ids, possible[tenant]); len(unexpected) > 0 {
			out = append(out, Violation{Check: "unexpected", Tenant: tenant,
				Detail: fmt.Sprintf("%d ids no add could have applied: %v", len(unexpected), head(unexpected))})
		}
	}
	return out
}

// checkReads finds stale reads (a count below the ids acknowledged before
// the read began) and reads that went backwards, with readable messages;
// porcupine finds these too, and more.
func checkReads(ops []Op) []Violation {
	var out []Violation
	byTenant := make(map[string][]Op)
	for _, op := range ops {
		byTenant[op.Tenant] = append(byTenant[op.Tenant], op)
	}
	for tenant, tops := range byTenant {
		var adds, reads []Op
		for _, op := range tops {
			switch {
			case op.Kind == Add && op.Outcome == OK:
				adds = append(adds, op)
			case op.Kind == Read && op.Outcome == OK:
				reads = append(reads, op)
			}
		}
		sort.Slice(adds, func(i, j int) bool { return adds[i].Return < adds[j].Return })
		for _, rd := range reads {
			before := make(map[string]bool)
			for _, a := range adds {
				if a.Return >= rd.Call {
					break
				}
				for _, id := range a.IDs {
					before[id] = true
				}
			}
			if rd.Count < int64(len(before)) {
				out = append(out, Violation{Check: "stale read", Tenant: tenant,
					Detail: fmt.Sprintf("read at %s counted %d, %d ids were acknowledged before it began", ms(rd.Call), rd.Count, len(before))})
			}
		}
		for _, a := range reads {
			for _, b := range reads {
				if a.Return < b.Call && b.Count < a.Count {
					out = append(out, Violation{Check: "monotonic reads", Tenant: tenant,
						Detail: fmt.Sprintf("read at %s counted %d after a read ending at %s counted %d", ms(b.Call), b.Count, ms(a.Return), a.Count)})
				}
			}
		}
	}
	return out
}

func ms(ns int64) string { return fmt.Sprintf("%.1fms", float64(ns)/1e6) }

func addID(m map[string]map[string]bool, tenant, id string) {
	if m[tenant] == nil {
		m[tenant] = make(map[string]bool)
	}
	m[tenant][id] = true
}

// missingFrom returns the sorted ids of a that are not in b.
func missingFrom(a, b map[string]bool) []string {
	var out []string
	for id := range a {
		if !b[id] {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func head(ids []string) []string {
	if len(ids) > 10 {
		return ids[:10]
	}
	return ids
}

// The porcupine model: per tenant, the set of ids, as a bitset over an index
// of every id in the history. States are never modified in place.

type input struct {
	kind   Kind
	tenant string
	ids    []string
	bits   []int
}

type output struct {
	count   int64
	unknown bool
}

type bitset []uint64

func (b bitset) with(idx []int, words int) bitset {
	out := make(bitset, words)
	copy(out, b)
	for _, i := range idx {
		out[i/64] |= 1 << (i % 64)
	}
	return out
}

func (b bitset) count() int64 {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return int64(n)
}

func checkLinearizable(ops []Op, present map[string]map[string]bool, timeout time.Duration) (porcupine.Model, porcupine.CheckResult, porcupine.LinearizationInfo) {
	index := make(map[string]int)
	var maxTime int64
	for _, op := range ops {
		maxTime = max(maxTime, op.Return)
		for _, id := range op.IDs {
			k := op.Tenant + "\x00" + id
			if _, ok := index[k]; !ok {
				index[k] = len(index)
			}
		}
	}
	words := (len(index) + 63) / 64
	// An add whose outcome is unknown but which took effect is, once a
	// retry of the same ids has been acknowledged, indistinguishable from
	// one that took effect before that retry returned: its ids are there
	// either way. Bounding it there keeps porcupine's search small.
	settledBy := func(u Op) int64 {
		ret := maxTime + 1
		for _, op := range ops {
			if op.Kind == Add && op.Outcome == OK && op.Tenant == u.Tenant && op.Call > u.Call && op.Return < ret && slices.Equal(op.IDs, u.IDs) {
				ret = op.Return
			}
		}
		return ret
	}
	var history []porcupine.Operation
	for _, op := range ops {
		in := input{kind: op.Kind, tenant: op.Tenant, ids: op.IDs}
		for _, id := range op.IDs {
			in.bits = append(in.bits, index[op.Tenant+"\x00"+id])
		}
		ret := op.Return
		var out output
		switch {
		case op.Kind == Read && op.Outcome != OK, op.Kind == Add && op.Outcome == Failed:
			continue // no effect
		case op.Kind == Read:
			out.count = op.Count
		case op.Outcome == Unknown:
			if len(op.IDs) == 0 || !present[op.Tenant][op.IDs[0]] {
				// It never took effect: had a read seen it, its ids would
				// be in the final state (ids are never removed), so
				// dropping it hides no violation from the reads.
				continue
			}
			// It took effect at some point after its call.
			out.unknown = true
			ret = settledBy(op)
		}
		history = append(history, porcupine.Operation{ClientId: op.Client, Input: in, Call: op.Call, Output: out, Return: ret})
	}
	model := porcupine.Model{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			var order []string
			parts := make(map[string][]porcupine.Operation)
			for _, op := range h {
				t := op.Input.(input).tenant
				if _, ok := parts[t]; !ok {
					order = append(order, t)
				}
				parts[t] = append(parts[t], op)
			}
			out := make([][]porcupine.Operation, len(order))
			for i, t := range order {
				out[i] = parts[t]
			}
			return out
		},
		Init: func() interface{} { return make(bitset, words) },
		Step: func(state, in, out interface{}) (bool, interface{}) {
			s, i, o := state.(bitset), in.(input), out.(output)
			if i.kind == Add {
				return true, s.with(i.bits, words)
			}
			return o.count == s.count(), s
		},
		Equal: func(a, b interface{}) bool { return slices.Equal(a.(bitset), b.(bitset)) },
		Hash: func(state interface{}) uint64 {
			h := fnv.New64a()
			for _, w := range state.(bitset) {
				var buf [8]byte
				for k := range buf {
					buf[k] = byte(w >> (8 * k))
				}
				_, _ = h.Write(buf[:])
			}
			return h.Sum64()
		},
		DescribeOperation: func(in, out interface{}) string {
			i, o := in.(input), out.(output)
			if i.kind == Read {
				return fmt.Sprintf("count(%s) -> %d", i.tenant, o.count)
			}
			res := "ok"
			if o.unknown {
				res = "?"
			}
			return fmt.Sprintf("add(%s, [%s]) -> %s", i.tenant, strings.Join(i.ids, " "), res)
		},
		DescribeState: func(state interface{}) string { return fmt.Sprintf("%d ids", state.(bitset).count()) },
	}
	res, info := porcupine.CheckOperationsVerbose(model, history, timeout)
	return model, res, info
}
