package stages

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// expansionSlack is what a document's aliases may add beyond ExpansionFactor times its size.
const (
	ExpansionFactor = 4
	expansionSlack  = 64 << 10
)

// DecodeStrict decodes the first YAML document of data into v, refusing fields v does not
// have, and refusing a document whose aliases expand it to more than ExpansionFactor times
// its own size (a few KiB of anchors and aliases can otherwise stand for gigabytes). It
// returns the document's node tree for line look-ups. Errors name file and line.
func DecodeStrict(file string, data []byte, v any) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, YAMLError(file, err)
	}
	if err := checkExpansion(file, &doc, len(data)); err != nil {
		return nil, err
	}
	if err := checkShape(file, &doc, reflect.TypeOf(v)); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// An empty document decodes to nothing: the caller's checks say what is missing.
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return nil, YAMLError(file, err)
	}
	return &doc, nil
}

func checkExpansion(file string, doc *yaml.Node, size int) error {
	limit := ExpansionFactor*size + expansionSlack
	memo := map[*yaml.Node]int{}
	visiting := map[*yaml.Node]bool{}
	total := 0
	var measure func(n *yaml.Node) (int, error)
	measure = func(n *yaml.Node) (int, error) {
		if n == nil {
			return 0, nil
		}
		if m, ok := memo[n]; ok {
			return m, nil
		}
		if visiting[n] {
			return 0, &Error{File: file, Line: n.Line, Msg: "an alias refers to the node that contains it"}
		}
		visiting[n] = true
		defer delete(visiting, n)
		m := len(n.Value) + len(n.Tag) + 2
		if n.Kind == yaml.AliasNode {
			a, err := measure(n.Alias)
			if err != nil {
				return 0, err
			}
			m += a
		}
		for _, c := range n.Content {
			cm, err := measure(c)
			if err != nil {
				return 0, err
			}
			m += cm
			if m > limit {
				return 0, &Error{File: file, Line: c.Line, Msg: fmt.Sprintf(
					"aliases expand the document past %d bytes (%d times its %d bytes): refused", limit, ExpansionFactor, size)}
			}
		}
		memo[n] = m
		return m, nil
	}
	var err error
	total, err = measure(doc)
	if err == nil && total > limit {
		err = &Error{File: file, Line: 1, Msg: fmt.Sprintf("aliases expand the document past %d bytes: refused", limit)}
	}
	return err
}
