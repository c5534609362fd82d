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

package iptables

import (
	"strings"
	"testing"

	utilexec "k8s.io/utils/exec"
	testingexec "k8s.io/utils/exec/testing"

	"github.com/svcplane/svcplane/dataplane/model"
)

// scripted returns an Exec whose commands answer iptables -C with out and err, and
// the command lines it ran.
func scripted(out string, err error) (*Exec, *[]string) {
	var lines []string
	fake := &testingexec.FakeExec{}
	fake.CommandScript = append(fake.CommandScript, func(cmd string, args ...string) utilexec.Cmd {
		lines = append(lines, strings.Join(append([]string{cmd}, args...), " "))
		fc := &testingexec.FakeCmd{CombinedOutputScript: []testingexec.FakeAction{
			func() ([]byte, []byte, error) { return []byte(out), nil, err },
		}}
		return testingexec.InitFakeCmd(fc, cmd, args...)
	})
	return &Exec{Prefix: []string{"ip", "netns", "exec", "test"}, Runner: fake}, &lines
}

// TestExecCheckExitStatus checks how iptables -C's exit status is read: 0 the rule
// exists, 1 it does not, 2 with a missing target chain it does not either, and
// anything else is an error.
func TestExecCheckExitStatus(t *testing.T) {
	j := Jump{Table: TableNAT, Chain: "PREROUTING", Target: "SVCP-SERVICES"}
	for _, tc := range []struct {
		name    string
		out     string
		err     error
		present bool
		wantErr bool
	}{
		{name: "present"},
		{name: "missing rule", out: "iptables: Bad rule (does a matching rule exist in that chain?).", err: testingexec.FakeExitError{Status: 1}},
		{name: "missing target (nft)", out: "iptables v1.8.9 (nf_tables): Chain 'SVCP-SERVICES' does not exist", err: testingexec.FakeExitError{Status: 2}},
		{name: "missing target (legacy)", out: "iptables v1.8.9 (legacy): Couldn't load target `SVCP-SERVICES'", err: testingexec.FakeExitError{Status: 2}},
		{name: "other failure", out: "iptables: Permission denied (you must be root).", err: testingexec.FakeExitError{Status: 4}, wantErr: true},
		{name: "not installed", err: utilexec.ErrExecutableNotFound, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, lines := scripted(tc.out, tc.err)
			if tc.err == nil {
				tc.present = true
			}
			present, err := e.check(t.Context(), model.IPv4, j)
			if (err != nil) != tc.wantErr || present != tc.present {
				t.Errorf("check = %v, %v; want present %v, error %v", present, err, tc.present, tc.wantErr)
			}
			want := "ip netns exec test iptables --wait -t nat -C PREROUTING " + strings.Join(j.Args(), " ")
			if len(*lines) != 1 || (*lines)[0] != want {
				t.Errorf("ran %q, want %q", *lines, want)
			}
		})
	}
}
