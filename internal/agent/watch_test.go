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

package agent

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

func TestChangeTime(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	created := metav1.NewTime(now.Add(-time.Hour))
	written := metav1.NewTime(now.Add(-time.Minute))
	deleting := metav1.NewTime(now.Add(-time.Second))
	for _, c := range []struct {
		name    string
		obj     metav1.ObjectMeta
		deleted bool
		want    time.Time
	}{
		{"created only", metav1.ObjectMeta{CreationTimestamp: created}, false, created.Time},
		{"newest write", metav1.ObjectMeta{CreationTimestamp: created, ManagedFields: []metav1.ManagedFieldsEntry{
			{Manager: "a", Time: &written}, {Manager: "b", Time: &created}, {Manager: "c"},
		}}, false, written.Time},
		{"trigger time wins", metav1.ObjectMeta{
			CreationTimestamp: created,
			Annotations:       map[string]string{corev1.EndpointsLastChangeTriggerTime: "2026-01-02T03:03:04.5Z"},
			ManagedFields:     []metav1.ManagedFieldsEntry{{Manager: "a", Time: &written}},
		}, false, time.Date(2026, 1, 2, 3, 3, 4, 5e8, time.UTC)},
		{"unparsable trigger time", metav1.ObjectMeta{CreationTimestamp: created, Annotations: map[string]string{corev1.EndpointsLastChangeTriggerTime: "soon"}}, false, created.Time},
		{"deleted with a timestamp", metav1.ObjectMeta{CreationTimestamp: created, DeletionTimestamp: &deleting}, true, deleting.Time},
		{"deleted at once", metav1.ObjectMeta{CreationTimestamp: created}, true, now},
		{"nothing known", metav1.ObjectMeta{}, false, now},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := changeTime(&corev1.Service{ObjectMeta: c.obj}, c.deleted, now); !got.Equal(c.want) {
				t.Errorf("changeTime = %v, want %v", got, c.want)
			}
		})
	}
	if got := changeTime("not an object", false, now); !got.Equal(now) {
		t.Errorf("changeTime of a non-object = %v, want now", got)
	}
}

func TestNodeChanged(t *testing.T) {
	node := func(rv string, addrs ...string) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", ResourceVersion: rv}}
		for _, a := range addrs {
			n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a})
		}
		return n
	}
	if nodeChanged(node("1", "192.0.2.10"), node("2", "192.0.2.10")) {
		t.Error("a status update that keeps the addresses counts as a change")
	}
	if !nodeChanged(node("1", "192.0.2.10"), node("2", "192.0.2.11")) {
		t.Error("a new address does not count as a change")
	}
	if !nodeChanged(toolscache.DeletedFinalStateUnknown{}, node("2")) {
		t.Error("something that is not a Node must count as a change")
	}
}

func TestChangeLogBound(t *testing.T) {
	var l changeLog
	base := time.Unix(0, 0)
	for i := range maxPendingChanges + 10 {
		l.add(base.Add(time.Duration(i)))
	}
	taken := l.take()
	if len(taken) != maxPendingChanges || !taken[0].Equal(base) {
		t.Fatalf("took %d changes starting at %v, want the first %d", len(taken), taken[0], maxPendingChanges)
	}
	if len(l.take()) != 0 {
		t.Fatal("take left changes behind")
	}
	l.add(base.Add(time.Hour))
	l.putBack(taken)
	if got := l.take(); len(got) != maxPendingChanges || !slices.Contains(got, base.Add(time.Hour)) {
		t.Errorf("after putBack: %d changes, want %d keeping the newer one", len(got), maxPendingChanges)
	}
}

func TestParseClusterCIDRs(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    []netip.Prefix
		wantErr string
	}{
		{in: ""},
		{in: "10.244.0.0/16", want: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}},
		{in: " 10.244.1.7/16 , fd00:10:244::/56", want: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:10:244::/56")}},
		{in: "10.244.0.0/16,10.245.0.0/16", wantErr: "at most one IPv4"},
		{in: "10.244.0.0", wantErr: "invalid --cluster-cidr"},
	} {
		got, err := ParseClusterCIDRs(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParseClusterCIDRs(%q): error %v, want one containing %q", c.in, err, c.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseClusterCIDRs(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestNewBackendModes(t *testing.T) {
	for mode, want := range map[string]string{
		"userspace": "unknown --mode",
	} {
		if _, err := NewBackend(context.Background(), mode); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewBackend(%q): error %v, want one containing %q", mode, err, want)
		}
	}
}

func TestHealthCheckErrorsAreLoggedWhenTheyChange(t *testing.T) {
	var lines []string
	log := funcr.New(func(_, args string) { lines = append(lines, args) }, funcr.Options{})
	a := &Agent{}
	held := errors.New("health check node port of ns/web: listen tcp :32000: bind: address already in use")
	for _, err := range []error{nil, held, held, held, nil, nil, held, errors.New("another")} {
		a.reportHealthCheckErr(log, err)
	}
	if len(lines) != 4 {
		t.Fatalf("logged %d lines, want 4 (held, recovered, held, another):\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for i, want := range []string{"address already in use", "serving every health check node port again", "address already in use", "another"} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d = %s, want it to contain %q", i, lines[i], want)
		}
	}
}
