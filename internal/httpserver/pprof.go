package httpserver

import (
	"net/http"
	"net/http/pprof"

	"github.com/go-chi/chi/v5"
)

// MountProfiler serves Go's profiler under /debug/pprof/ on r. Mount it on
// an internal router only, behind the cluster token: a profile shows
// memory contents and costs CPU while it runs.
func MountProfiler(r chi.Router) {
	r.HandleFunc("/debug/pprof/", pprof.Index)
	r.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	r.HandleFunc("/debug/pprof/profile", pprof.Profile)
	r.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	r.HandleFunc("/debug/pprof/trace", pprof.Trace)
	r.Handle("/debug/pprof/{name}", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		pprof.Handler(chi.URLParam(req, "name")).ServeHTTP(w, req)
	}))
}
