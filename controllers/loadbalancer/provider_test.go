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

package loadbalancer

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	cause := errors.New("still provisioning")
	err := fmt.Errorf("ensure: %w", RetryAfter(1500*time.Millisecond, cause))
	retry, ok := errors.AsType[*RetryError](err)
	if !ok || retry.Delay != 1500*time.Millisecond {
		t.Fatalf("errors.As(RetryAfter(1.5s)) = %v, %v", retry, ok)
	}
	if !errors.Is(err, cause) {
		t.Error("a RetryError unwraps to its cause")
	}
	if got := err.Error(); got != "ensure: still provisioning (retrying in 1.5s)" {
		t.Errorf("Error() = %q", got)
	}
	if retry, _ := errors.AsType[*RetryError](RetryAfter(0, nil)); retry.Delay != time.Second || retry.Err == nil {
		t.Errorf("RetryAfter(0, nil) = %+v, want one second and a message", retry)
	}
}
