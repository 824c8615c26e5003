package builder_test

import (
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/serpent-os/serpent-oci/builder"
)

func TestImageProcess(t *testing.T) {
	img := v1.Config{Entrypoint: []string{"/bin/tini", "--"}, Cmd: []string{"sh"}, User: "app"}
	tests := []struct {
		name       string
		cfg        v1.Config
		entrypoint string
		command    []string
		user       string
		want       []string
		wantUser   string
		err        bool
	}{
		{name: "the image's entrypoint and cmd", cfg: img, want: []string{"/bin/tini", "--", "sh"}, wantUser: "app"},
		{name: "a command replaces the cmd", cfg: img, command: []string{"uname", "-m"}, want: []string{"/bin/tini", "--", "uname", "-m"}, wantUser: "app"},
		{name: "an entrypoint clears the cmd", cfg: img, entrypoint: "/bin/env -i", want: []string{"/bin/env", "-i"}, wantUser: "app"},
		{name: "entrypoint and command", cfg: img, entrypoint: "/bin/env", command: []string{"true"}, want: []string{"/bin/env", "true"}, wantUser: "app"},
		{name: "a user given wins", cfg: img, user: "0:0", want: []string{"/bin/tini", "--", "sh"}, wantUser: "0:0"},
		{name: "nothing to run", cfg: v1.Config{}, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, user, err := builder.ImageProcess(tt.cfg, tt.entrypoint, tt.command, tt.user)
			if tt.err {
				if err == nil {
					t.Fatalf("ImageProcess = %q, want an error", args)
				}
				return
			}
			if err != nil || !slices.Equal(args, tt.want) || user != tt.wantUser {
				t.Errorf("ImageProcess = %q %q %v, want %q %q", args, user, err, tt.want, tt.wantUser)
			}
		})
	}
}
