// Package ceiling is the yardstick of `make bench`: the cheapest service
// with the public API's shape. It decodes a POST /items body as JSON and
// answers as the coordinator does, and answers GET /items/{t}/count with
// a constant, with no state, no replication and no disk. What it does per
// request is the least any Go HTTP/JSON service does; the cluster's figures
// are read as ratios to it, measured in the same run.
package ceiling

import (
	"encoding/json"
	"io"
	"net/http"
)

// Handler serves POST /items and GET /items/{tenantID}/count.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /items", func(w http.ResponseWriter, r *http.Request) {
		var items []struct {
			ID     string `json:"id"`
			Tenant string `json:"tenant"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 4<<20)).Decode(&items); err != nil {
			http.Error(w, `{"message":"bad request","code":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"message":"Success"}`+"\n")
	})
	mux.HandleFunc("GET /items/{tenantID}/count", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"count":0}`+"\n")
	})
	return mux
}
