package runc

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestSpecGolden(t *testing.T) {
	tests := []struct {
		name string
		opts SpecOptions
	}{
		{"isolated", SpecOptions{
			Rootfs: "/store/.serpent/runs/x/fs/rootfs", Args: []string{"/bin/sh", "-c", "make"},
			Env: []string{"PATH=/bin", "A=1", "PATH=/usr/bin:/bin"}, Cwd: "/build",
			Mounts: []Mount{{Source: "/cache/sources", Destination: "/sources", ReadOnly: true}, {Source: "/out", Destination: "/output/"}},
		}},
		{"network", SpecOptions{Rootfs: "/r", Args: []string{"sh"}, Network: true, ResolvConf: "/etc/resolv.conf", Terminal: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Spec(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			// The seccomp profile is the library's (TestSpecHardening checks it) and the memory
			// limit the machine's: the golden file holds the rest.
			s.Linux.Seccomp = nil
			s.Linux.Resources.Memory = nil
			s.Process.Rlimits[0].Hard, s.Process.Rlimits[0].Soft = 0, 0 // the machine's, at most 65536
			got, err := json.MarshalIndent(s, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tt.name+".json")
			if *update {
				os.MkdirAll("testdata", 0o755)
				os.WriteFile(path, append(got, '\n'), 0o644)
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got)+"\n" != string(want) {
				t.Errorf("config.json differs from %s (go test -update rewrites it):\n%s", path, got)
			}
		})
	}
}

func TestSpecNetworkNamespace(t *testing.T) {
	has := func(s *specs.Spec) bool {
		for _, ns := range s.Linux.Namespaces {
			if ns.Type == specs.NetworkNamespace {
				return true
			}
		}
		return false
	}
	off, _ := Spec(SpecOptions{Rootfs: "/r", Args: []string{"true"}})
	on, _ := Spec(SpecOptions{Rootfs: "/r", Args: []string{"true"}, Network: true})
	if !has(off) || has(on) {
		t.Fatalf("network namespace: without network %v, with network %v; want true, false", has(off), has(on))
	}
}

func TestSpecRejects(t *testing.T) {
	tests := []struct {
		opts    SpecOptions
		wantErr string
	}{
		{SpecOptions{Rootfs: "relative", Args: []string{"true"}}, "not absolute"},
		{SpecOptions{Rootfs: "/r"}, "no command"},
		{SpecOptions{Rootfs: "/r", Args: []string{"true"}, Mounts: []Mount{{Source: "src", Destination: "/d"}}}, "must be absolute"},
	}
	for _, tt := range tests {
		if _, err := Spec(tt.opts); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Spec(%+v) = %v, want %q", tt.opts, err, tt.wantErr)
		}
	}
}

func TestMergeEnv(t *testing.T) {
	got := MergeEnv([]string{"PATH=/bin", "A=1", "bogus", "PATH=/usr/bin", "=x", "B=2", "A=3"})
	if strings.Join(got, " ") != "PATH=/usr/bin A=3 B=2" {
		t.Fatalf("MergeEnv = %v", got)
	}
}

func TestSpecHardening(t *testing.T) {
	s, err := Spec(SpecOptions{Rootfs: "/r", Args: []string{"sh"}})
	if err != nil {
		t.Fatal(err)
	}
	p := s.Process
	if !p.NoNewPrivileges {
		t.Error("no-new-privileges is off")
	}
	for _, c := range p.Capabilities.Bounding {
		if c == "CAP_NET_RAW" || c == "CAP_AUDIT_WRITE" || c == "CAP_SYS_ADMIN" {
			t.Errorf("bounding set has %s", c)
		}
	}
	sc := s.Linux.Seccomp
	if sc == nil || sc.DefaultAction != specs.ActErrno || len(sc.Syscalls) < 10 {
		t.Fatalf("seccomp: %+v", sc)
	}
	allowed := map[string]bool{}
	for _, rule := range sc.Syscalls {
		if rule.Action == specs.ActAllow && len(rule.Args) == 0 {
			for _, n := range rule.Names {
				allowed[n] = true
			}
		}
	}
	for _, n := range []string{"read", "execve", "mknodat", "chroot", "fchownat", "setuid"} {
		if !allowed[n] {
			t.Errorf("seccomp refuses %s, which builds need", n)
		}
	}
	for _, n := range []string{"unshare", "mount", "init_module", "keyctl", "bpf"} {
		if allowed[n] {
			t.Errorf("seccomp allows %s without CAP_SYS_ADMIN", n)
		}
	}
	r := s.Linux.Resources
	if r == nil || r.Pids == nil || *r.Pids.Limit != DefaultLimits().Pids || r.Memory == nil || *r.Memory.Limit <= 1<<30 {
		t.Errorf("resources: %+v", r)
	}
	cgroupNS := false
	for _, ns := range s.Linux.Namespaces {
		cgroupNS = cgroupNS || ns.Type == specs.CgroupNamespace
	}
	if !cgroupNS {
		t.Error("no cgroup namespace")
	}
	// A caller's limits replace the defaults, field by field.
	s, _ = Spec(SpecOptions{Rootfs: "/r", Args: []string{"sh"}, Limits: Limits{Pids: 99}})
	if *s.Linux.Resources.Pids.Limit != 99 || *s.Linux.Resources.Memory.Limit != DefaultLimits().Memory {
		t.Errorf("Limits{Pids: 99}: pids %d, memory %d", *s.Linux.Resources.Pids.Limit, *s.Linux.Resources.Memory.Limit)
	}
}
