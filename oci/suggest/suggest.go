// Package suggest finds, for a mistyped name (a command, a tag), the names it was probably
// meant to be: "did you mean". A candidate qualifies within an edit distance that grows with
// the name's length (one edit for up to four characters, two for longer), counting a swap of
// two adjacent characters as one edit, as git's and cobra's suggestions do.
package suggest

import "sort"

// Closest returns the candidates nearest to name (all of them at the smallest distance found,
// in the order given, without repeats), or nil when none is close enough. A candidate equal
// to name is not a suggestion.
func Closest(name string, candidates []string) []string {
	limit := 1
	if len([]rune(name)) > 4 {
		limit = 2
	}
	best := limit + 1
	var out []string
	seen := map[string]bool{}
	for _, c := range candidates {
		if c == name || seen[c] {
			continue
		}
		d := distance(name, c)
		switch {
		case d > limit:
		case d < best:
			best, out = d, []string{c}
			seen = map[string]bool{c: true}
		case d == best:
			out = append(out, c)
			seen[c] = true
		}
	}
	return out
}

// Sorted is Closest with its result in lexical order.
func Sorted(name string, candidates []string) []string {
	out := Closest(name, candidates)
	sort.Strings(out)
	return out
}

// distance is the optimal string alignment distance between a and b (Levenshtein's, with an
// adjacent transposition as one edit), over runes.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
