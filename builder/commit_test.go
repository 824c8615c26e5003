package builder_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/buildertest"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// filesExecutor is a fake run that also read files for annotations, as a real run reads
// Output.Files from the root it left.
type filesExecutor struct {
	*buildertest.FakeExecutor
	files map[string]string
}

func (f filesExecutor) Run(ctx context.Context, opts builder.RunOptions) (builder.Result, error) {
	res, err := f.FakeExecutor.Run(ctx, opts)
	res.Files = maps.Clone(f.files)
	return res, err
}

// noLayerExecutor captures nothing whatever it is asked: an executor's bug, which commit must
// report rather than make an image of nothing.
type noLayerExecutor struct{ *buildertest.FakeExecutor }

func (n noLayerExecutor) Run(ctx context.Context, opts builder.RunOptions) (builder.Result, error) {
	res, err := n.FakeExecutor.Run(ctx, opts)
	res.Layer = nil
	return res, err
}

// commitBase is a new store and, in it, a one-layer image for p, tagged base, with an
// annotation of its own that a run's image must not inherit.
func commitBase(t *testing.T, p v1.Platform) (*store.Store, v1.Image) {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "motd"), []byte("base\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := image.WriteLayer(context.Background(), st, dir, layer.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := image.Append(nil, p, l, image.AppendOptions{CreatedBy: "base"})
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.Annotations(img, map[string]string{"org.example.base-only": "yes"}).(v1.Image)
	if _, err := st.WriteImage(context.Background(), img, store.Ref{Name: "base"}); err != nil {
		t.Fatal(err)
	}
	return st, img
}

func TestRunAndCommit(t *testing.T) {
	amd64, arm64 := platform.MustParse("linux/amd64"), platform.MustParse("linux/arm64")
	tests := []struct {
		name     string
		capture  builder.Capture
		files    map[string]string
		commit   builder.Commit
		platform v1.Platform // the image's
		layers   int
		history  string // the last history entry's CreatedBy
		want     map[string]string
	}{
		{
			name:    "a layer on the base, tagged",
			capture: builder.CaptureLayer,
			commit: builder.Commit{CreatedBy: "serpent-oci stage s", Comment: "c",
				Annotations: map[string]string{"org.example.recipe": "r1"}, Tag: &store.Ref{Name: "out"}},
			platform: amd64, layers: 2, history: "serpent-oci stage s",
			want: map[string]string{
				ocispec.AnnotationBaseImageName: "base",
				"org.example.recipe":            "r1",
			},
		},
		{
			name:     "the run's files win over the commit's annotations",
			capture:  builder.CaptureLayer,
			files:    map[string]string{"org.example.recipe": "from-run", "org.example.sbom": `{"a":1}`},
			commit:   builder.Commit{Annotations: map[string]string{"org.example.recipe": "r1"}, Tag: &store.Ref{Name: "out"}},
			platform: amd64, layers: 2,
			want: map[string]string{
				ocispec.AnnotationBaseImageName: "base",
				"org.example.recipe":            "from-run",
				"org.example.sbom":              `{"a":1}`,
			},
		},
		{
			name:     "a directory on scratch takes the commit's platform",
			capture:  builder.CaptureDir,
			commit:   builder.Commit{Platform: arm64, CreatedBy: "rootfs", Tag: &store.Ref{Name: "out"}},
			platform: arm64, layers: 1, history: "rootfs",
			want: map[string]string{
				ocispec.AnnotationBaseImageName: "base",
			},
		},
		{
			name:     "untagged, for the caller to build on",
			capture:  builder.CaptureLayer,
			commit:   builder.Commit{CreatedBy: "spin step"},
			platform: amd64, layers: 2, history: "spin step",
			want: map[string]string{
				ocispec.AnnotationBaseImageName: "base",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st, base := commitBase(t, amd64)
			e := filesExecutor{buildertest.NewFake(st), tt.files}
			opts := builder.RunOptions{Name: "s", Base: base, BaseName: "base", Platform: amd64,
				Process: builder.Process{Args: []string{"true"}},
				Output:  builder.Output{Capture: tt.capture, Dir: "/out"}}
			res, err := builder.RunAndCommit(ctx, e, opts, tt.commit)
			if err != nil {
				t.Fatal(err)
			}
			if res.Image == nil {
				t.Fatal("no image")
			}
			layers, err := res.Image.Layers()
			if err != nil {
				t.Fatal(err)
			}
			if len(layers) != tt.layers {
				t.Errorf("layers = %d, want %d", len(layers), tt.layers)
			}
			top, _ := layers[len(layers)-1].Digest()
			if want, _ := res.Layer.Digest(); top != want {
				t.Errorf("top layer %s, want the run's %s", top, want)
			}
			cf, err := res.Image.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != tt.platform.OS || cf.Architecture != tt.platform.Architecture {
				t.Errorf("platform %s/%s, want %s/%s", cf.OS, cf.Architecture, tt.platform.OS, tt.platform.Architecture)
			}
			if n := len(cf.History); tt.history != "" && (n == 0 || cf.History[n-1].CreatedBy != tt.history) {
				t.Errorf("history %+v, want the last created by %q", cf.History, tt.history)
			}
			m, err := res.Image.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			want := maps.Clone(tt.want)
			d, err := base.Digest()
			if err != nil {
				t.Fatal(err)
			}
			want[ocispec.AnnotationBaseImageDigest] = d.String()
			if !maps.Equal(m.Annotations, want) {
				t.Errorf("annotations %v, want %v", m.Annotations, want)
			}
			tags, err := st.Tags()
			if err != nil {
				t.Fatal(err)
			}
			names := map[string]bool{}
			for _, tag := range tags {
				names[tag.Ref.Name] = true
			}
			if tt.commit.Tag == nil {
				if res.Descriptor.Digest != (v1.Hash{}) || names["out"] || len(names) != 1 {
					t.Errorf("untagged commit: descriptor %v, tags %v", res.Descriptor, names)
				}
				return
			}
			got, tagged, err := st.Image(*tt.commit.Tag)
			if err != nil {
				t.Fatalf("the tag: %v", err)
			}
			if want, _ := res.Image.Digest(); tagged.Digest != want || res.Descriptor.Digest != want {
				t.Errorf("tagged %s, descriptor %s, want the image %s", tagged.Digest, res.Descriptor.Digest, want)
			}
			if _, err := got.Layers(); err != nil {
				t.Errorf("the tagged image's layers: %v", err)
			}
		})
	}
}

func TestRunAndCommitTagsNothingOnFailure(t *testing.T) {
	amd64 := platform.MustParse("linux/amd64")
	boom := errors.New("boom")
	tests := []struct {
		name string
		e    func(*buildertest.FakeExecutor) builder.Executor
		is   error
	}{
		{"the run fails", func(f *buildertest.FakeExecutor) builder.Executor {
			f.Fail = func(builder.RunOptions) error { return boom }
			return f
		}, boom},
		{"the executor captured no layer", func(f *buildertest.FakeExecutor) builder.Executor { return noLayerExecutor{f} }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st, base := commitBase(t, amd64)
			opts := builder.RunOptions{Name: "s", Base: base, Platform: amd64,
				Process: builder.Process{Args: []string{"true"}},
				Output:  builder.Output{Capture: builder.CaptureLayer}}
			res, err := builder.RunAndCommit(ctx, tt.e(buildertest.NewFake(st)), opts, builder.Commit{Tag: &store.Ref{Name: "out"}})
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v, want %v", err, tt.is)
			}
			if res.Image != nil {
				t.Errorf("an image was made: %v", res.Image)
			}
			if _, _, err := st.Image(store.Ref{Name: "out"}); err == nil {
				t.Error("out was tagged")
			}
		})
	}
}

func TestRunAndCommitWithoutCaptureMakesNoImage(t *testing.T) {
	ctx := context.Background()
	amd64 := platform.MustParse("linux/amd64")
	st, base := commitBase(t, amd64)
	opts := builder.RunOptions{Name: "shell", Base: base, Platform: amd64,
		Process: builder.Process{Args: []string{"sh"}}}
	res, err := builder.RunAndCommit(ctx, buildertest.NewFake(st), opts, builder.Commit{Tag: &store.Ref{Name: "out"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Image != nil || res.Layer != nil {
		t.Errorf("image %v, layer %v: want none", res.Image, res.Layer)
	}
	if _, _, err := st.Image(store.Ref{Name: "out"}); err == nil {
		t.Error("out was tagged")
	}
}
