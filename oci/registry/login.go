package registry

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Login checks user and password against registry (HOST[:PORT]) and, when they are accepted,
// stores them the way `docker login` does: in the credential helper the Docker config file
// names for the registry, else in its auths section ($DOCKER_CONFIG/config.json or
// ~/.docker/config.json). It returns the file written.
func (c *Client) Login(ctx context.Context, registry, user, password string) (string, error) {
	reg, err := c.parseRegistry(registry)
	if err != nil {
		return "", err
	}
	if user == "" || password == "" {
		return "", fmt.Errorf("login %s: a user name and a password are both needed", registry)
	}
	if err := c.check(ctx, reg, &authn.Basic{Username: user, Password: password}); err != nil {
		return "", err
	}
	cf, err := loadDockerConfig()
	if err != nil {
		return "", fmt.Errorf("login %s: read the Docker config: %w", registry, err)
	}
	key := authKey(reg)
	if err := cf.GetCredentialsStore(key).Store(types.AuthConfig{ServerAddress: key, Username: user, Password: password}); err != nil {
		return "", fmt.Errorf("login %s: store the credentials: %w", registry, err)
	}
	if err := cf.Save(); err != nil {
		return "", fmt.Errorf("login %s: write %s: %w", registry, cf.Filename, err)
	}
	return cf.Filename, nil
}

// Logout removes the stored credentials for registry.
func (c *Client) Logout(registry string) error {
	reg, err := c.parseRegistry(registry)
	if err != nil {
		return err
	}
	cf, err := loadDockerConfig()
	if err != nil {
		return fmt.Errorf("logout %s: read the Docker config: %w", registry, err)
	}
	key := authKey(reg)
	if _, err := cf.GetCredentialsStore(key).Get(key); err != nil {
		return fmt.Errorf("logout %s: %w", registry, err)
	}
	if err := cf.GetCredentialsStore(key).Erase(key); err != nil {
		return fmt.Errorf("logout %s: %w", registry, err)
	}
	return cf.Save()
}

// loadDockerConfig reads the Docker config from $DOCKER_CONFIG, else ~/.docker, looked up
// now: docker/cli's config.Dir() remembers the first answer for the life of the process,
// while the keychain that reads the credentials back looks each time.
func loadDockerConfig() (*configfile.ConfigFile, error) {
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, err
		}
		dir = filepath.Join(home, ".docker")
	}
	return config.Load(dir)
}

func (c *Client) parseRegistry(s string) (name.Registry, error) {
	var opts []name.Option
	if c.insecure(s) {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(s, opts...)
	if err != nil {
		return name.Registry{}, fmt.Errorf("registry %q: %w", s, err)
	}
	return reg, nil
}

// authKey is the key of a registry's entry in the Docker config (Docker Hub keeps its old URL).
func authKey(reg name.Registry) string {
	if reg.RegistryStr() == name.DefaultRegistry {
		return authn.DefaultAuthKey
	}
	return reg.RegistryStr()
}

// check asks the registry's /v2/ endpoint with auth, as `docker login` does: a registry that
// wants a token gets it from its token server with these credentials, one that wants basic
// authentication gets them directly.
func (c *Client) check(ctx context.Context, reg name.Registry, auth authn.Authenticator) error {
	t, err := transport.NewWithContext(ctx, reg, auth, c.transport, []string{reg.Scope(transport.PullScope)})
	if err != nil {
		return c.describe("login", reg, reg.RegistryStr(), err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reg.Scheme()+"://"+reg.RegistryStr()+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: t}).Do(req)
	if err != nil {
		return c.describe("login", reg, reg.RegistryStr(), err)
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return c.describe("login", reg, reg.RegistryStr(), err)
	}
	return nil
}
