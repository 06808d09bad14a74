package ledger

// FilterComplete reports whether l's filter of the ids held has every id
// on disk: until then, every lookup reads the engine.
func FilterComplete(l *Ledger) bool { return l.ids.complete.Load() }
