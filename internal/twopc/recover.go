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
// back under a new id. Until one does, every recorded holder must report; a
// holder that reports without being ready (it was syncing) counts as heard,
// so when every holder is heard and none is ready, recovery starts over.
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
			if h.Live && st.Mode == wire.ModeReady {
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
	var best *wire.Status
	var epoch uint64
	for _, st := range reports {
		epoch = max(epoch, st.Epoch)
		if st.Mode != wire.ModeReady {
			continue
		}
		if best == nil || best.Committed.Less(st.Committed) || (best.Committed == st.Committed && best.Last.Less(st.Last)) {
			best = &st
		}
	}
	pos.Epoch = max(epoch+1, floor)
	pos.ClusterID = clusterID
	if best == nil {
		return pos, ""
	}
	if best.ClusterID != "" {
		pos.ClusterID = best.ClusterID
	}
	pos.Last = wire.Decision{Round: best.Last, Commit: best.LastCommitted}
	pos.Committed = best.Committed
	pos.Stable = best.Last.Seq
	return pos, best.ID
}
