package compilefarm_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/serpent-os/serpent-oci/builder/compilefarm"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{in: "h1", want: "h1:3632/4"},
		{in: "h1:4000/8,h2", want: "h1:4000/8 h2:3632/4"},
		{in: "10.0.0.2:3632/2 10.0.0.3:3632/2", want: "10.0.0.2:3632/2 10.0.0.3:3632/2"},
		{in: "[::1]:3700", want: "[::1]:3700/4"},
		{in: "", err: `compile farm "": no helper`},
		{in: "h1/0", err: `jobs "0": want 1 to 1024`},
		{in: "h1/x", err: `jobs "x": want 1 to 1024`},
		{in: "h1:0", err: `port "0": want 1 to 65535`},
		{in: "h1:http", err: `port "http": want 1 to 65535`},
		{in: "h1,h1:3632", err: "h1:3632 given twice"},
		{in: ":3632", err: "want HOST[:PORT][/JOBS]"},
		{in: manyHelpers(65), err: "65 helpers, at most 64"},
	} {
		hs, err := compilefarm.Parse(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %s", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		var got []string
		for _, h := range hs {
			got = append(got, fmt.Sprintf("%s/%d", h.Address, h.Jobs))
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("%q: %s, want %s", tt.in, strings.Join(got, " "), tt.want)
		}
	}
}

func manyHelpers(n int) string {
	var hs []string
	for i := range n {
		hs = append(hs, fmt.Sprintf("h%d", i))
	}
	return strings.Join(hs, ",")
}
