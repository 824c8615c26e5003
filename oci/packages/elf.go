package packages

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// elfMagic starts every ELF file.
var elfMagic = []byte{0x7f, 'E', 'L', 'F'}

// maxELFBytes bounds the ELF files read for their dynamic section: a package's file is
// hostile input, and nothing that big is a library or program of a bootstrap.
const maxELFBytes = 1 << 30

// elfInfo is what an ELF file says it provides and needs.
type elfInfo struct {
	soname string   // DT_SONAME, for a shared library
	needed []string // DT_NEEDED
	interp string   // PT_INTERP, for a dynamically linked program
	arch   string   // the machine, as moss names it in soname(): x86_64, aarch64
	shared bool     // a shared object (ET_DYN): a library, a PIE program, or musl's libc.so
}

// readELF reads f's dynamic section; ok is false when f is not an ELF file at all. A file
// that starts as ELF and is not one is an error: a package with a broken library is refused,
// not guessed at.
func readELF(f *os.File, size int64) (info elfInfo, ok bool, err error) {
	head := make([]byte, 4)
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, elfMagic) {
		return elfInfo{}, false, nil
	}
	if size > maxELFBytes {
		return elfInfo{}, true, fmt.Errorf("an ELF file of %d bytes (at most %d are read)", size, maxELFBytes)
	}
	defer func() {
		// debug/elf is not hardened against every malformed file: a panic is a refusal.
		if r := recover(); r != nil {
			info, ok, err = elfInfo{}, true, fmt.Errorf("malformed ELF file: %v", r)
		}
	}()
	ef, err := elf.NewFile(io.NewSectionReader(f, 0, size))
	if err != nil {
		return elfInfo{}, true, fmt.Errorf("malformed ELF file: %w", err)
	}
	defer ef.Close()
	info.shared = ef.Type == elf.ET_DYN
	switch ef.Machine {
	case elf.EM_X86_64:
		info.arch = "x86_64"
	case elf.EM_AARCH64:
		info.arch = "aarch64"
	default:
		info.arch = strings.ToLower(strings.TrimPrefix(ef.Machine.String(), "EM_"))
	}
	for _, p := range ef.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(p.Open(), 4096))
		if err != nil {
			return elfInfo{}, true, fmt.Errorf("malformed ELF file: PT_INTERP: %w", err)
		}
		info.interp = usrPath(string(bytes.TrimRight(b, "\x00")))
	}
	if ef.Section(".dynamic") == nil {
		return info, true, nil // static
	}
	if names, err := ef.DynString(elf.DT_SONAME); err == nil && len(names) > 0 {
		info.soname = names[0]
	}
	if info.needed, err = ef.DynString(elf.DT_NEEDED); err != nil {
		return elfInfo{}, true, fmt.Errorf("malformed ELF file: DT_NEEDED: %w", err)
	}
	return info, true, nil
}

// usrPath is p as it is in a usrmerge root, where /lib, /lib64, /bin and /sbin are symlinks
// into /usr: a loader named /lib/ld-musl-x86_64.so.1 is the file /usr/lib/ld-musl-x86_64.so.1.
func usrPath(p string) string {
	p = path.Clean(p)
	for _, d := range []string{"/lib/", "/lib64/", "/bin/", "/sbin/"} {
		if strings.HasPrefix(p, d) {
			return "/usr" + p
		}
	}
	return p
}

// Provider names, as moss writes them.
func sonameOf(name, arch string) string { return "soname(" + name + "(" + arch + "))" }
func binaryOf(name string) string       { return "binary(" + name + ")" }
func interpreterOf(p string) string     { return "interpreter(" + p + ")" }
