package stages

import "testing"

func TestOutputForHost(t *testing.T) {
	for _, tt := range []struct {
		output string
		want   Output
	}{
		{"layer", Output{Kind: Layer}},
		{"{rootfs: /out}", Output{Kind: Rootfs, Dir: "/out"}},
		{"{rootfs: /out, for: target}", Output{Kind: Rootfs, Dir: "/out"}},
		{"{rootfs: /out/, for: host}", Output{Kind: Rootfs, Dir: "/out", ForHost: true}},
	} {
		r, err := ParseFile("tools.yaml", []byte("from: image:busybox\nruns-on: host\nplatforms: [linux/arm64]\nrun: x\noutput: "+tt.output+"\n"))
		if err != nil {
			t.Fatalf("output: %s: %v", tt.output, err)
		}
		if r.Output != tt.want {
			t.Errorf("output: %s = %+v, want %+v", tt.output, r.Output, tt.want)
		}
	}
}
