/*
Copyright 2026 The svcplane Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package dns

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	mdns "github.com/miekg/dns"
)

const (
	// MaxUDPSize is the largest UDP answer the server sends and the buffer size
	// it advertises with EDNS0: 1232 bytes fit an IPv6 packet of the minimum
	// MTU, 1280, without fragmentation (DNS Flag Day 2020).
	MaxUDPSize = 1232
	// maxChase bounds how many CNAMEs inside the zone an answer follows.
	maxChase = 8
	// upstreamTimeout bounds the whole of one forwarded question, all upstreams
	// together; resolvers retry after 5 s (resolv.conf's timeout).
	upstreamTimeout = 4 * time.Second
)

// Handler answers DNS queries from a Zone and forwards every other name to an
// Upstream. It implements mdns.Handler.
type Handler struct {
	zone     *Zone
	upstream Upstream
	metrics  *Metrics
	log      logr.Logger
	// turn rotates answers of several records, so that clients that take the
	// first address spread over a headless Service's endpoints (what CoreDNS's
	// loadbalance plugin, in kubeadm's default Corefile, does).
	turn atomic.Uint32
	// ready, when set, reports whether the zone holds everything.
	ready func() bool
}

// SetReady makes the handler answer SERVFAIL for names of the zone until ready
// reports true: while the caches fill, a Service not seen yet would otherwise
// get NXDOMAIN, which resolvers cache for the SOA's minimum. Names outside the
// zone are forwarded all along. Call it before serving.
func (h *Handler) SetReady(ready func() bool) { h.ready = ready }

// Upstream resolves names that are not the zone's.
type Upstream interface {
	// Exchange sends req over network ("udp" or "tcp", as the client asked) and
	// returns the first usable answer; an error when no upstream answered.
	Exchange(ctx context.Context, req *mdns.Msg, network string) (*mdns.Msg, error)
}

// NewHandler returns a Handler answering from zone. upstream and metrics may be
// nil: then every name outside the zone gets SERVFAIL, and nothing is counted.
func NewHandler(zone *Zone, upstream Upstream, metrics *Metrics, log logr.Logger) *Handler {
	return &Handler{zone: zone, upstream: upstream, metrics: metrics, log: log}
}

// ServeDNS answers one query. It never panics: an internal error is answered
// with SERVFAIL.
func (h *Handler) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	start := time.Now()
	network := "udp"
	if a := w.LocalAddr(); a != nil && strings.HasPrefix(a.Network(), "tcp") {
		network = "tcp"
	}
	resp, forwarded := h.Answer(context.Background(), req, network)
	if err := w.WriteMsg(resp); err != nil {
		h.log.V(1).Info("writing an answer", "error", err.Error())
	}
	if h.metrics != nil {
		var qtype uint16
		if len(req.Question) == 1 {
			qtype = req.Question[0].Qtype
		}
		h.metrics.observe(qtype, resp.Rcode, forwarded, time.Since(start))
	}
}

// Invalid counts a message the server could not parse; it implements
// InvalidCounter.
func (h *Handler) Invalid(_ []byte, _ error) {
	if h.metrics != nil {
		h.metrics.observe(0, mdns.RcodeFormatError, false, 0)
	}
}

// Answer returns the answer to req, received over network, sized for the
// client: truncated (TC set) when it does not fit the client's UDP buffer. It
// reports whether an upstream was asked.
func (h *Handler) Answer(ctx context.Context, req *mdns.Msg, network string) (resp *mdns.Msg, forwarded bool) {
	defer func() {
		if r := recover(); r != nil {
			h.log.Error(fmt.Errorf("%v", r), "answering a query panicked; answering SERVFAIL")
			resp, forwarded = failure(req, mdns.RcodeServerFailure), false
		}
	}()
	if req.Opcode != mdns.OpcodeQuery {
		return failure(req, mdns.RcodeNotImplemented), false
	}
	// A query has one question (RFC 9619); an answer, an update's records or
	// more than an OPT and a TSIG in the additional section do not belong in
	// one.
	if len(req.Question) != 1 || req.Response || len(req.Answer) > 0 || len(req.Ns) > 0 || len(req.Extra) > 2 {
		return failure(req, mdns.RcodeFormatError), false
	}
	size := mdns.MinMsgSize
	opt := req.IsEdns0()
	if opt != nil {
		// RFC 6891 6.1.3: a version we do not implement gets BADVERS.
		if opt.Version() != 0 {
			resp = failure(req, mdns.RcodeBadVers)
			resp.SetEdns0(MaxUDPSize, false)
			return resp, false
		}
		size = min(max(int(opt.UDPSize()), mdns.MinMsgSize), MaxUDPSize)
	}
	if network == "tcp" {
		size = mdns.MaxMsgSize
	}

	q := req.Question[0]
	var res Result
	switch q.Qtype {
	case mdns.TypeAXFR, mdns.TypeIXFR:
		// No zone transfers: the zone is made from the API server, not copied.
		return failure(req, mdns.RcodeRefused), false
	}
	if mdns.IsFqdn(q.Name) {
		res = h.zone.Lookup(q.Name, q.Qtype)
	}
	if !res.Ours {
		resp = h.forward(ctx, req, network)
		if opt != nil && resp.IsEdns0() == nil {
			resp.SetEdns0(MaxUDPSize, opt.Do()) // a SERVFAIL of ours, or an upstream without EDNS0
		}
		fit(resp, req, size)
		return resp, true
	}
	if q.Qclass != mdns.ClassINET && q.Qclass != mdns.ClassANY {
		return failure(req, mdns.RcodeRefused), false
	}
	if h.ready != nil && !h.ready() {
		return failure(req, mdns.RcodeServerFailure), false
	}

	resp = new(mdns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = h.upstream != nil
	resp.Rcode = res.Rcode
	resp.Answer, resp.Ns, resp.Extra = res.Answer, res.Ns, res.Extra
	if n := len(res.Answer); n > 1 && res.Chase == "" {
		k := int(h.turn.Add(1) % uint32(n))
		resp.Answer = append(res.Answer[k:len(res.Answer):len(res.Answer)], res.Answer[:k]...)
	}
	if res.Chase != "" {
		forwarded = h.chase(ctx, resp, res.Chase, q.Qtype, network)
	}
	if opt != nil {
		resp.SetEdns0(MaxUDPSize, opt.Do())
	}
	resp.Truncate(size)
	return resp, forwarded
}

// chase adds the records of target, the CNAME an answer ends with, for qtype:
// from the zone while the chain stays inside it, else from an upstream, as
// cluster DNS answers an ExternalName Service (specification 2.5). It reports
// whether an upstream was asked. When no upstream answers, the CNAME stands
// alone, and the client's resolver may follow it itself.
func (h *Handler) chase(ctx context.Context, resp *mdns.Msg, target string, qtype uint16, network string) bool {
	for range maxChase {
		res := h.zone.Lookup(target, qtype)
		if !res.Ours {
			break
		}
		resp.Answer = append(resp.Answer, res.Answer...)
		resp.Rcode, resp.Ns = res.Rcode, res.Ns
		if res.Chase == "" {
			return false
		}
		target = res.Chase
	}
	if h.upstream == nil || h.zone.Lookup(target, qtype).Ours {
		return false // no upstream, or a CNAME loop inside the zone
	}
	q := new(mdns.Msg)
	q.SetQuestion(target, qtype)
	q.RecursionDesired = true
	q.SetEdns0(MaxUDPSize, false)
	ctx, cancel := context.WithTimeout(ctx, upstreamTimeout)
	defer cancel()
	up, err := h.upstream.Exchange(ctx, q, network)
	if err != nil || (up.Rcode != mdns.RcodeSuccess && up.Rcode != mdns.RcodeNameError) {
		return true
	}
	// The zone is authoritative for the CNAME, not for what it points to.
	resp.Authoritative = false
	resp.Answer = append(resp.Answer, up.Answer...)
	resp.Rcode, resp.Ns = up.Rcode, up.Ns
	return true
}

// forward asks the upstreams, and answers SERVFAIL when none answers.
func (h *Handler) forward(ctx context.Context, req *mdns.Msg, network string) *mdns.Msg {
	if h.upstream == nil {
		return failure(req, mdns.RcodeServerFailure)
	}
	ctx, cancel := context.WithTimeout(ctx, upstreamTimeout)
	defer cancel()
	resp, err := h.upstream.Exchange(ctx, req, network)
	if err != nil {
		h.log.V(1).Info("no upstream answered", "name", req.Question[0].Name, "error", err.Error())
		if h.metrics != nil {
			h.metrics.upstreamFailures.Inc()
		}
		return failure(req, mdns.RcodeServerFailure)
	}
	resp.Id = req.Id
	return resp
}

// fit truncates resp to size, keeping the OPT record's place, for an answer
// that came from an upstream, which sized it for this server rather than for
// the client.
func fit(resp, req *mdns.Msg, size int) {
	if req.IsEdns0() == nil {
		// A client without EDNS0 must not get an OPT record (RFC 6891 7).
		resp.Extra = removeOPT(resp.Extra)
	}
	resp.Truncate(size)
}

func removeOPT(rrs []mdns.RR) []mdns.RR {
	out := rrs[:0]
	for _, rr := range rrs {
		if rr.Header().Rrtype != mdns.TypeOPT {
			out = append(out, rr)
		}
	}
	return out
}

// failure returns an empty answer to req with rcode.
func failure(req *mdns.Msg, rcode int) *mdns.Msg {
	resp := new(mdns.Msg)
	resp.SetRcode(req, rcode)
	// SetRcode keeps the question; a malformed one may not be worth echoing,
	// but it is what the client sent and lets it match the answer.
	resp.Opcode = req.Opcode
	return resp
}
