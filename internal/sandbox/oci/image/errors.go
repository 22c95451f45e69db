package image

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/tidepool-dev/tidepool/internal/sandbox"
)

// pullError is what Pull returns when an image is unavailable. Its message
// is meant for the pool's owner (it never holds credentials); it wraps
// sandbox.ErrImage and, for logs and errors.As, the underlying cause.
type pullError struct {
	msg   string
	cause error
}

func (e *pullError) Error() string   { return e.msg }
func (e *pullError) Unwrap() []error { return []error{sandbox.ErrImage, e.cause} }

func imageErr(cause error, format string, args ...any) error {
	return &pullError{msg: fmt.Sprintf(format, args...), cause: cause}
}

// errNotFound marks a missing local image (file, directory, tag, digest).
var errNotFound = errors.New("not found")

// unpackError is a failure to unpack a layer.
type unpackError struct {
	layer int // 1-based
	err   error
}

func (e *unpackError) Error() string { return fmt.Sprintf("layer %d: %v", e.layer, e.err) }
func (e *unpackError) Unwrap() error { return e.err }

// errUnsafe marks image content refused by the unpacker: paths escaping
// the root, limits exceeded, malformed entries.
var errUnsafe = errors.New("unsafe image content")

// schemeError is returned by the transport for a plain-HTTP request to a
// registry that is not listed as insecure.
type schemeError struct{ host string }

func (e *schemeError) Error() string {
	return fmt.Sprintf("plain HTTP to %s refused: not an insecure registry", e.host)
}

// classify turns an error from resolving, fetching or unpacking ref into
// what Pull returns. Cancellation of ctx is returned as is (it says nothing
// about the image); everything else wraps sandbox.ErrImage.
func classify(ctx context.Context, ref, host string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("pull %s: %w", ref, ctx.Err())
	}
	var pe *pullError
	if errors.As(err, &pe) {
		return err
	}
	var te *transport.Error
	if errors.As(err, &te) {
		if te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden ||
			hasCode(te, transport.UnauthorizedErrorCode, transport.DeniedErrorCode) {
			return imageErr(err, "registry denied access to %s: check the pool's registry credentials", ref)
		}
		if te.StatusCode == http.StatusNotFound ||
			hasCode(te, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode) {
			return imageErr(err, "image %s not found", ref)
		}
		return imageErr(err, "registry %s refused to serve %s: %v", host, ref, err)
	}
	var se *schemeError
	if errors.As(err, &se) {
		return imageErr(err, "cannot reach registry %s over HTTPS (plain HTTP is allowed only to registries listed as insecure)", host)
	}
	if isNetwork(err) {
		return imageErr(err, "cannot reach registry %s: %v", host, err)
	}
	var ue *unpackError
	if errors.As(err, &ue) {
		return imageErr(err, "image %s cannot be unpacked: %v", ref, err)
	}
	if errors.Is(err, errNotFound) {
		return imageErr(err, "image %s not found", ref)
	}
	return imageErr(err, "pull image %s: %v", ref, err)
}

func hasCode(te *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range te.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}

func isNetwork(err error) bool {
	var (
		ue   *url.Error
		ne   net.Error
		oe   *net.OpError
		de   *net.DNSError
		ce   *tls.CertificateVerificationError
		ue2  x509.UnknownAuthorityError
		he   x509.HostnameError
		rhe  tls.RecordHeaderError
		cie  x509.CertificateInvalidError
		errs = []any{&ue, &ne, &oe, &de, &ce, &ue2, &he, &rhe, &cie}
	)
	for _, target := range errs {
		if errors.As(err, target) {
			return true
		}
	}
	return false
}
