package image

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
)

// TestOneInstantForEveryTime: whatever epoch a caller gives (zero, sub-second, not UTC), an
// image made here records one instant, in whole seconds, as its config's created time, its
// history entry and the mtime of every file newer than it. (Before the defaults were filled in
// one place, a sub-second epoch gave a config that disagreed with the files.)
func TestOneInstantForEveryTime(t *testing.T) {
	east := time.FixedZone("east", 5*3600)
	tests := []struct {
		name  string
		epoch time.Time
		want  time.Time
	}{
		{"zero is the default epoch", time.Time{}, layer.DefaultSourceDateEpoch},
		{"sub-second", time.Unix(1700000000, 600_000_000), time.Unix(1700000000, 0).UTC()},
		{"another zone", time.Date(2024, 3, 1, 17, 0, 0, 250, east), time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := t.TempDir()
			if err := os.WriteFile(filepath.Join(src, "new"), []byte("made now"), 0o644); err != nil {
				t.Fatal(err)
			}
			st := openStore(t)
			for _, how := range []string{"import", "append"} {
				var img v1.Image
				switch how {
				case "import":
					if _, err := Import(context.Background(), st, src, store.Ref{Name: "x"}, ImportOptions{Platform: arm64, Layer: layer.WriteOptions{SourceDateEpoch: tt.epoch}}); err != nil {
						t.Fatal(err)
					}
					var err error
					if img, _, err = st.Image(store.Ref{Name: "x"}.WithPlatform(&arm64)); err != nil {
						t.Fatal(err)
					}
				case "append":
					var err error
					if img, _, err = AppendDir(context.Background(), st, nil, arm64, src, AppendOptions{Layer: layer.WriteOptions{SourceDateEpoch: tt.epoch}}); err != nil {
						t.Fatal(err)
					}
				}
				cfg, err := img.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				if !cfg.Created.Time.Equal(tt.want) || cfg.Created.Location() != time.UTC {
					t.Errorf("%s: config created %v, want %v (UTC)", how, cfg.Created.Time, tt.want)
				}
				if len(cfg.History) != 1 || !cfg.History[0].Created.Time.Equal(tt.want) {
					t.Errorf("%s: history %+v, want one entry at %v", how, cfg.History, tt.want)
				}
				for name, mtime := range layerMtimes(t, img) {
					if !mtime.Equal(tt.want) {
						t.Errorf("%s: %s has mtime %v, want %v", how, name, mtime, tt.want)
					}
				}
			}
		})
	}
}

func layerMtimes(t *testing.T, img v1.Image) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	for _, e := range testenv.TopLayer(t, img) {
		out[e.Header.Name] = e.Header.ModTime
	}
	return out
}
