package layer

import (
	"bytes"
	"fmt"
	"strconv"
)

// rawHeader is a 512-byte ustar header, for streams archive/tar will not write (a PAX 1.0
// sparse file: its writer drops GNU.sparse records).
func rawHeader(name string, typ byte, size int64) []byte {
	h := make([]byte, 512)
	copy(h[0:100], name)
	copy(h[100:108], "0000644\x00")
	copy(h[108:116], "0000000\x00")
	copy(h[116:124], "0000000\x00")
	copy(h[124:136], fmt.Sprintf("%011o\x00", size))
	copy(h[136:148], "00000000000\x00")
	h[156] = typ
	copy(h[257:263], "ustar\x00")
	copy(h[263:265], "00")
	copy(h[148:156], "        ")
	sum := 0
	for _, b := range h {
		sum += int(b)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return h
}

func pad(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

func paxRecord(k, v string) string {
	rec := " " + k + "=" + v + "\n"
	n := len(rec)
	for {
		s := strconv.Itoa(n) + rec
		if len(s) == n {
			return s
		}
		n = len(s)
	}
}

// sparseTar is a tar stream of one PAX 1.0 sparse file name of apparent size realsize whose
// only data is the byte 'x' at offset realsize-1: 1.5 KiB that claims realsize bytes.
func sparseTar(name string, realsize int64) *bytes.Reader {
	var records string
	for _, kv := range [][2]string{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", name}, {"GNU.sparse.realsize", strconv.FormatInt(realsize, 10)}} {
		records += paxRecord(kv[0], kv[1])
	}
	sparseMap := pad([]byte(fmt.Sprintf("1\n%d\n1\n", realsize-1)))
	data := append(sparseMap, 'x')
	var out []byte
	out = append(out, rawHeader("PaxHeaders/"+name, 'x', int64(len(records)))...)
	out = append(out, pad([]byte(records))...)
	out = append(out, rawHeader("GNUSparseFile.0/"+name, '0', int64(len(data)))...)
	out = append(out, pad(data)...)
	out = append(out, make([]byte, 1024)...)
	return bytes.NewReader(out)
}
