package stages

import (
	"fmt"
	"strings"
)

// Chain is the recipes target is built from, in build order: the first starts from something
// other than a stage (an image, host packages, scratch), each next one from the one before,
// target last.
func (s *Set) Chain(target string) ([]*Recipe, error) {
	r, ok := s.Recipes[target]
	if !ok {
		return nil, fmt.Errorf("no stage is named %q (stages: %s)", target, strings.Join(s.Names(), ", "))
	}
	var chain []*Recipe
	for {
		chain = append(chain, r)
		if r.From.Kind != FromStage {
			break
		}
		if len(chain) > len(s.Recipes) { // Load refuses cycles; a set made otherwise may have one
			return nil, fmt.Errorf("stage %s: its from: chain loops", target)
		}
		if r, ok = s.Recipes[r.From.Ref]; !ok {
			return nil, fmt.Errorf("stage %s: from: %s names no stage", chain[len(chain)-1].Name, chain[len(chain)-1].From.Ref)
		}
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	return chain, nil
}

// ChainSources are the sources target's chain needs, each once, in build order.
func (s *Set) ChainSources(target string) ([]Source, error) {
	chain, err := s.Chain(target)
	if err != nil {
		return nil, err
	}
	var out []Source
	seen := map[string]bool{}
	for _, r := range chain {
		for _, src := range r.Sources {
			if !seen[src.SHA256] {
				seen[src.SHA256] = true
				out = append(out, src)
			}
		}
	}
	return out, nil
}
