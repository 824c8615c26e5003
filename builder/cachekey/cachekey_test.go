package cachekey

import "testing"

func TestOf(t *testing.T) {
	type inputs struct {
		Base string
		Env  map[string]string
	}
	a := Of(inputs{"sha256:aa", map[string]string{"A": "1", "B": "2"}})
	tests := []struct {
		name string
		v    any
		same bool
	}{
		{"map order does not matter", inputs{"sha256:aa", map[string]string{"B": "2", "A": "1"}}, true},
		{"another base", inputs{"sha256:bb", map[string]string{"A": "1", "B": "2"}}, false},
		{"another value", inputs{"sha256:aa", map[string]string{"A": "1", "B": "3"}}, false},
	}
	for _, tt := range tests {
		if got := Of(tt.v); (got == a) != tt.same {
			t.Errorf("%s: %s vs %s", tt.name, got, a)
		}
	}
	// A known value: the rule itself must not drift (it keys every image in every store).
	// sha256 of {"k":"v"}, by sha256sum.
	if got, want := Of(map[string]string{"k": "v"}), "sha256:666c1aa02e8068c6d5cc1d3295009432c16790bec28ec8ce119d0d1a18d61319"; got != want {
		t.Errorf("Of = %s, want %s", got, want)
	}
}
