package stages

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

var (
	nodeType        = reflect.TypeFor[yaml.Node]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
)

// checkShape walks a YAML document against the Go type it is about to be decoded into, and
// says in the file's own terms what does not fit: a field the type does not have (with the
// fields it does), a list where a single value belongs, a word where true or false does. Each
// error names the file, the line and the field's path (sources[1].sha256), so that no message
// of the decoder, which names Go types, reaches a user. A yaml.Node field, and a type that
// decodes itself, are the caller's to check.
func checkShape(file string, n *yaml.Node, t reflect.Type) error {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	return shapeOf(file, n, t, "")
}

func shapeOf(file string, n *yaml.Node, t reflect.Type, path string) error {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nodeType || reflect.PointerTo(t).Implements(unmarshalerType) || isNull(n) {
		return nil
	}
	fail := func(format string, args ...any) error {
		return &Error{File: file, Line: n.Line, Field: path, Msg: fmt.Sprintf(format, args...)}
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return fail("want a mapping of fields, got %s", kindOf(n))
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, value := n.Content[i], n.Content[i+1]
			f, ok := fields[key.Value]
			if !ok {
				return &Error{File: file, Line: key.Line, Field: join(path, key.Value),
					Msg: "unknown field (known here: " + strings.Join(slices.Sorted(maps.Keys(fields)), ", ") + ")"}
			}
			if err := shapeOf(file, value, f.Type, join(path, key.Value)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return fail("want a mapping, got %s", kindOf(n))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i]
			if key.Kind != yaml.ScalarNode {
				return &Error{File: file, Line: key.Line, Field: path, Msg: "want plain words as keys, got " + kindOf(key)}
			}
			if err := shapeOf(file, n.Content[i+1], t.Elem(), join(path, key.Value)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return fail("want a list, got %s", kindOf(n))
		}
		for i, item := range n.Content {
			if err := shapeOf(file, item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			return fail("want a single value, got %s", kindOf(n))
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			return fail("want true or false, got %s", kindOf(n))
		}
	case reflect.Int, reflect.Int64, reflect.Uint32:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			return fail("want a whole number, got %s", kindOf(n))
		}
	}
	return nil
}

// yamlFields are t's fields by their YAML name.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f
	}
	return out
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// kindOf says what a node is, as a user would: a mapping, a list, or the value itself.
func kindOf(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
