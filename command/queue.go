package command

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/webhookauth/caddy-webhookauth/queue"
)

// queueCommand is `caddy webhook queue`: the operator's view of the
// queues of a running Caddy, through its admin API (as `caddy reload`
// reaches it). It shows metadata only, never a body or a header value.
func queueCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue list|pause|resume|items|retry|redrive|drop [<queue>] [<id>]",
		Short: "Lists and operates the webhook_queue queues of a running Caddy",
		Long: `
Operates the webhook_queue queues of a running Caddy through its admin API.

  caddy webhook queue list                      every queue: pending, in flight, dead, retained, oldest, paused
  caddy webhook queue pause <queue>             stop delivering (accepting goes on)
  caddy webhook queue resume <queue>
  caddy webhook queue items <queue> [--state pending|dead|retained] [--limit n]
  caddy webhook queue retry <queue> <id>        a dead or retained item, attempted again now
  caddy webhook queue redrive <queue>           every dead item, attempted again now
  caddy webhook queue drop <queue> <id>         remove an item

--address is the admin endpoint, as for caddy reload (default localhost:2019).`,
		Args: cobra.RangeArgs(1, 3),
	}
	f := cmd.Flags()
	f.String("address", "localhost:2019", "the admin API's address")
	f.String("state", "", "items: pending, dead or retained (default: all)")
	f.Int("limit", 100, "items: how many to list")
	cmd.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
		if err := runQueue(fl, cmd.OutOrStdout()); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		return caddy.ExitCodeSuccess, nil
	})
	return cmd
}

func runQueue(fl caddycmd.Flags, out io.Writer) error {
	args := fl.Args()
	op := args[0]
	need := map[string]int{"list": 1, "pause": 2, "resume": 2, "items": 2, "redrive": 2, "retry": 3, "drop": 3}
	n, ok := need[op]
	if !ok {
		return fmt.Errorf("unknown queue operation %q: want list, pause, resume, items, retry, redrive or drop", op)
	}
	if len(args) != n {
		return fmt.Errorf("queue %s takes %d argument(s) after it: %s", op, n-1, map[int]string{1: "none", 2: "<queue>", 3: "<queue> <id>"}[n])
	}
	base := fl.String("address")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	base += "/webhook/queues"
	var method, path string
	switch op {
	case "list":
		method, path = http.MethodGet, ""
	case "pause", "resume", "redrive":
		method, path = http.MethodPost, "/"+url.PathEscape(args[1])+"/"+op
	case "items":
		q := url.Values{}
		if s := fl.String("state"); s != "" {
			q.Set("state", s)
		}
		q.Set("limit", fmt.Sprint(fl.Int("limit")))
		method, path = http.MethodGet, "/"+url.PathEscape(args[1])+"/items?"+q.Encode()
	case "retry":
		method, path = http.MethodPost, "/"+url.PathEscape(args[1])+"/items/"+url.PathEscape(args[2])+"/retry"
	case "drop":
		method, path = http.MethodDelete, "/"+url.PathEscape(args[1])+"/items/"+url.PathEscape(args[2])
	}
	raw, err := adminCall(fl.String("address"), method, base+path)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch op {
	case "list", "pause", "resume":
		var qs []queue.QueueInfo
		if op == "list" {
			err = json.Unmarshal(raw, &qs)
		} else {
			var one queue.QueueInfo
			err = json.Unmarshal(raw, &one)
			qs = []queue.QueueInfo{one}
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "QUEUE\tPENDING\tIN FLIGHT\tDEAD\tRETAINED\tOLDEST\tPAUSED")
		for _, q := range qs {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%v\n", q.Name, q.Pending, q.InFlight, q.Dead, q.Retained,
				(time.Duration(q.OldestPending) * time.Second).String(), q.Paused)
		}
	case "items":
		var items []queue.Item
		if err := json.Unmarshal(raw, &items); err != nil {
			return err
		}
		fmt.Fprintln(tw, "ID\tSTATE\tRECEIVED\tATTEMPTS\tLAST\tPROVIDER\tDELIVERY ID\tEVENT")
		for _, it := range items {
			last := it.LastError
			if last == "" && it.LastStatus != 0 {
				last = fmt.Sprint(it.LastStatus)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", it.ID, it.State, it.Received.UTC().Format(time.RFC3339), it.Attempts,
				dash(last), dash(it.Provider), dash(it.DeliveryID), dash(it.Event))
		}
	case "redrive":
		var r struct {
			Redriven int `json:"redriven"`
		}
		json.Unmarshal(raw, &r)
		fmt.Fprintf(tw, "%d dead item(s) of %s made pending\n", r.Redriven, args[1])
	default:
		fmt.Fprintf(tw, "%s %s: done\n", op, args[2])
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
