package twopc

import "github.com/distributed-counter/distributed-counter/internal/wire"

// Holder is a counter recorded as holding every acknowledged round: a
// voter of the last round decided commit, or of its commit acknowledgements
// when some voters failed. Live is false for a counter still syncing.
type Holder struct {
	ID          string `json:"id"`
	Incarnation string `json:"incarnation"`
	Live        bool   `json:"live"`
}

// Missing returns the counters a restarting coordinator must still hear
// from before it may choose where the commit order resumes.
//
// With the holders the previous coordinator recorded (recorded is true),
// one report settles it: a holder that was live and reports as ready holds
// every acknowledged round, since the record is rewritten before any round
// with other voters commits and before a round some voter failed to commit
// is acknowledged, and a counter's commits are on its disk before it
// acknowledges them. That holds across a restart of the holder: its id
// lives in its data, so a holder that comes back with its data is the same
// holder (new incarnation, same rows), and one whose data is gone comes
// back under a new id. A holder whose sync was cut by a crash still holds
// what it held when it joined (wire.Status.Holds), which is every
// acknowledged round as long as it is recorded live. Until one such report
// arrives, every recorded holder must report; a holder that reports no
// complete copy counts as heard, so when every holder is heard and none
// holds one, recovery starts over.
// A holder that never reports (its disk is gone) is waited for.
//
// Without a record, it must hear from every member of the participant list
// stamped on the latest prepare any reporter saw: a counter becomes live
// only after it took part in a committed round, so every live participant
// of round r+1 took part in round r. If every participant of the latest
// round known has reported, and none reports a later one, no later round
// was acknowledged.
func Missing(reports map[string]wire.Status, holders []Holder, recorded bool) []string {
	if recorded {
		var missing []string
		for _, h := range holders {
			st, ok := reports[h.ID]
			if !ok {
				missing = append(missing, h.ID)
				continue
			}
			if h.Live && held(st) != nil {
				return nil
			}
		}
		return missing
	}
	var latest *wire.Status
	for _, st := range reports {
		if len(st.View) == 0 {
			continue
		}
		if latest == nil || latest.ViewRound.Less(st.ViewRound) {
			latest = &st
		}
	}
	if latest == nil {
		return nil
	}
	var missing []string
	for _, id := range latest.View {
		if _, ok := reports[id]; !ok {
			missing = append(missing, id)
		}
	}
	return missing
}

// Resume chooses the position a restarted coordinator continues from, given
// a closed set of reports (Missing returned nothing).
//
// The seed is the ready counter with the latest last committed round
// (ties: the latest last round): every round it committed is decided
// commit, which is the rule "commit the in-doubt round if any counter
// committed it". Any round staged but committed
// nowhere is aborted by omission, and its seq is reused by the new epoch.
// That is safe because a client is acknowledged only after every live
// participant committed, and reads only see stable rounds: an in-doubt
// round was never acknowledged nor read.
//
// The new epoch is above every epoch reported and at least floor, so
// messages of the previous coordinator are refused from now on.
// clusterID names the history when no counter holds one.
func Resume(reports map[string]wire.Status, floor uint64, clusterID string) (pos Position, seed string) {
	var best *heldCopy
	var epoch uint64
	for _, st := range reports {
		epoch = max(epoch, st.Epoch)
		h := held(st)
		if h == nil {
			continue
		}
		if best == nil || best.committed.Less(h.committed) || (best.committed == h.committed && best.last.Round.Less(h.last.Round)) {
			best = h
		}
	}
	pos.Epoch = max(epoch+1, floor)
	pos.ClusterID = clusterID
	if best == nil {
		return pos, ""
	}
	if best.clusterID != "" {
		pos.ClusterID = best.clusterID
	}
	pos.Last = best.last
	pos.Committed = best.committed
	pos.Stable = best.last.Round.Seq
	return pos, best.id
}

// heldCopy is the complete copy of the history a counter's report says it
// holds on disk: through committed, resolved through last.
type heldCopy struct {
	id, clusterID string
	committed     wire.RoundID
	last          wire.Decision
}

// held returns the complete copy a report says its counter holds, or nil.
// A ready counter holds its last committed round and every round resolved
// up to its last; a counter whose sync was cut (by a crash, a restart of
// the coordinator) still holds what it held when it joined, through Holds.
func held(st wire.Status) *heldCopy {
	switch {
	case st.Mode == wire.ModeReady:
		return &heldCopy{id: st.ID, clusterID: st.ClusterID, committed: st.Committed, last: wire.Decision{Round: st.Last, Commit: st.LastCommitted}}
	case !st.Holds.IsZero():
		return &heldCopy{id: st.ID, clusterID: st.ClusterID, committed: st.Holds, last: wire.Decision{Round: st.Holds, Commit: true}}
	}
	return nil
}

// Holds reports whether st holds a complete copy through round committed.
func Holds(st wire.Status, committed wire.RoundID) bool {
	h := held(st)
	return h != nil && h.committed == committed
}
