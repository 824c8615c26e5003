package stages

import (
	"slices"
	"strings"
	"testing"
)

func TestChain(t *testing.T) {
	src := func(sum string) Source { return Source{Name: sum, SHA256: strings.Repeat(sum, 64)} }
	set := &Set{Recipes: map[string]*Recipe{
		"seed":   {Name: "seed", From: From{Kind: FromImage, Ref: "debian"}, Sources: []Source{src("a")}},
		"stage1": {Name: "stage1", From: From{Kind: FromStage, Ref: "seed"}, Sources: []Source{src("b"), src("c")}},
		"stage2": {Name: "stage2", From: From{Kind: FromStage, Ref: "stage1"}, Sources: []Source{src("a"), src("d")}},
		"loop1":  {Name: "loop1", From: From{Kind: FromStage, Ref: "loop2"}},
		"loop2":  {Name: "loop2", From: From{Kind: FromStage, Ref: "loop1"}},
		"orphan": {Name: "orphan", From: From{Kind: FromStage, Ref: "gone"}},
	}}
	tests := []struct {
		target  string
		want    []string // recipe names, in build order
		sources string   // the chain's sources, each once, in build order
		err     string
	}{
		{target: "stage2", want: []string{"seed", "stage1", "stage2"}, sources: "abcd"},
		{target: "seed", want: []string{"seed"}, sources: "a"},
		{target: "stage9", err: `no stage is named "stage9" (stages: loop1, loop2, orphan, seed, stage1, stage2)`},
		{target: "loop1", err: "stage loop1: its from: chain loops"},
		{target: "orphan", err: "stage orphan: from: gone names no stage"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			chain, err := set.Chain(tt.target)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("Chain(%s) = %v, want error %q", tt.target, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, r := range chain {
				names = append(names, r.Name)
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("Chain(%s) = %v, want %v", tt.target, names, tt.want)
			}
			srcs, err := set.ChainSources(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			var got string
			for _, s := range srcs {
				got += s.Name
			}
			if got != tt.sources {
				t.Errorf("ChainSources(%s) = %s, want %s", tt.target, got, tt.sources)
			}
		})
	}
}
