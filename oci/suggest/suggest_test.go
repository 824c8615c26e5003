package suggest

import (
	"slices"
	"testing"
)

func TestClosest(t *testing.T) {
	commands := []string{"build", "spin", "plan", "verify", "run", "shell", "images", "inspect", "push", "pull", "tag", "untag", "gc", "fsck"}
	tests := []struct {
		name string
		want []string
	}{
		{"biuld", []string{"build"}},       // a transposition is one edit
		{"buidl", []string{"build"}},       // at the end too
		{"bulid", []string{"build"}},       // and in the middle
		{"imags", []string{"images"}},      // a deletion
		{"imagess", []string{"images"}},    // an insertion
		{"pul", []string{"pull"}},          // short: one edit
		{"psh", []string{"push"}},          // short: one edit
		{"pl", nil},                        // two edits from plan and pull: too far for a short name
		{"gcc", []string{"gc"}},            // one edit
		{"tga", []string{"tag"}},           // transposition
		{"untga", []string{"untag"}},       // transposition
		{"build", nil},                     // itself is no suggestion
		{"compile", nil},                   // nothing close
		{"", nil},                          // empty: nothing within one edit of a name here
		{"pusl", []string{"push", "pull"}}, // a tie keeps the order given
		{"inpsect", []string{"inspect"}},   // a longer name with a swap
		{"verfiy", []string{"verify"}},     // ditto
		{"spni", []string{"spin"}},         // a four-letter swap
		{"stage3@linux-amd6", nil},         // not a command at all
		{"ünicode", nil},                   // runes, not bytes
	}
	for _, tt := range tests {
		if got := Closest(tt.name, commands); !slices.Equal(got, tt.want) {
			t.Errorf("Closest(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestClosestTags(t *testing.T) {
	tags := []string{"stage3@linux-amd64", "stage3@linux-arm64", "full/stage3@linux-amd64", "busybox@linux-amd64", "busybox@linux-amd64"}
	tests := []struct {
		name string
		want []string
	}{
		{"stage3@linux-amd46", []string{"stage3@linux-amd64"}},
		{"stgae3@linux-arm64", []string{"stage3@linux-arm64"}},
		{"busybx@linux-amd64", []string{"busybox@linux-amd64"}}, // repeats collapse
		{"stage3@linux-s390x", nil},
	}
	for _, tt := range tests {
		if got := Closest(tt.name, tags); !slices.Equal(got, tt.want) {
			t.Errorf("Closest(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"kitten", "sitting", 3},
		{"ab", "ba", 1}, {"abc", "acb", 1}, {"ca", "abc", 3}, {"ü", "u", 1},
	}
	for _, tt := range tests {
		if got := distance(tt.a, tt.b); got != tt.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := distance(tt.b, tt.a); got != tt.want {
			t.Errorf("distance(%q, %q) = %d, want %d (not symmetric)", tt.b, tt.a, got, tt.want)
		}
	}
}

func FuzzClosest(f *testing.F) {
	f.Add("biuld", "build")
	f.Add("", "x")
	f.Fuzz(func(t *testing.T, a, b string) {
		d := distance(a, b)
		if d != distance(b, a) || d < 0 || d > max(len([]rune(a)), len([]rune(b))) {
			t.Fatalf("distance(%q, %q) = %d", a, b, d)
		}
		// Over runes: invalid bytes each read as U+FFFD, so "\xfb" and "\xf7" are equal.
		if (d == 0) != (string([]rune(a)) == string([]rune(b))) {
			t.Fatalf("distance(%q, %q) = %d", a, b, d)
		}
	})
}
