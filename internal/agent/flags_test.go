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
	"fmt"
	"strings"
	"testing"
)

func TestParseNodePortAddresses(t *testing.T) {
	got, primary, err := ParseNodePortAddresses(" 192.168.1.7/24, ,0.0.0.0/0,fd00::1/64")
	want := "[192.168.1.0/24 0.0.0.0/0 fd00::/64]"
	if err != nil || primary || fmt.Sprint(got) != want {
		t.Errorf("ParseNodePortAddresses = %v, %v, %v; want %s", got, primary, err, want)
	}
	if _, _, err := ParseNodePortAddresses("192.168.1.7"); err == nil || !strings.Contains(err.Error(), `invalid --nodeport-addresses "192.168.1.7"`) {
		t.Errorf("a bare address: error %v", err)
	}
	if got, primary, err := ParseNodePortAddresses(""); err != nil || got != nil || primary {
		t.Errorf("empty: %v, %v, %v; want none", got, primary, err)
	}
	if got, primary, err := ParseNodePortAddresses(" primary "); err != nil || got != nil || !primary {
		t.Errorf("primary: %v, %v, %v; want primary alone", got, primary, err)
	}
	if _, _, err := ParseNodePortAddresses("primary,10.0.0.0/8"); err == nil || !strings.Contains(err.Error(), `"primary" goes alone`) {
		t.Errorf("primary with a prefix: error %v", err)
	}
}
