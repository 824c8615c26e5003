package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Cache is a repository of stage images tagged by cache key (--cache-from, --cache-to). A key
// covers the stage's target and the platform it runs on, so the images of every platform of
// a build live side by side under their own tags: a multi-platform build makes a
// multi-platform cache.
type Cache struct {
	Client *Client
	Repo   name.Repository
}

// CacheTag is the tag of a stage image in a cache repository: the stage's name, for people,
// and the key's hex digest, which decides. Tags are at most 128 characters.
func CacheTag(stage, key string) string {
	hex := key[strings.IndexByte(key, ':')+1:]
	stage = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, stage)
	if n := 128 - len(hex) - 1; len(stage) > n {
		stage = stage[:n]
	}
	return stage + "-" + hex
}

func (c *Cache) ref(stage, key string) name.Reference { return c.Repo.Tag(CacheTag(stage, key)) }

// Find looks the stage image with key up. It returns (nil, nil) when the cache has none.
func (c *Cache) Find(ctx context.Context, stage, key string) (v1.Image, name.Reference, error) {
	ref := c.ref(stage, key)
	img, err := remote.Image(ref, c.Client.remoteOptions(ctx)...)
	if err != nil {
		err = c.Client.describe("look up cache", ref, c.Repo.RegistryStr(), err)
		if IsNotFound(err) {
			return nil, ref, nil
		}
		return nil, ref, err
	}
	return img, ref, nil
}

// Put pushes a stage image under key unless the cache has it already.
func (c *Cache) Put(ctx context.Context, stage, key string, img v1.Image) (Pushed, error) {
	ref := c.ref(stage, key)
	if d, err := c.Client.Head(ctx, ref); err == nil {
		if h, err := img.Digest(); err == nil && h == d.Digest {
			return Pushed{Descriptor: d}, nil
		}
	} else if !IsNotFound(err) {
		return Pushed{}, err
	}
	p, err := c.Client.Push(ctx, img, ref, PushOptions{})
	if err != nil {
		return p, fmt.Errorf("cache: %w", err)
	}
	return p, nil
}

// String is the cache repository.
func (c *Cache) String() string { return c.Repo.String() }
