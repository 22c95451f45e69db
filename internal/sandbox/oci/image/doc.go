// Package image pulls container images and unpacks them into root file
// systems that the OCI runtime mounts read-only as the lower directory of
// each sandbox's overlayfs.
//
// # Sources
//
// Store.Pull takes a registry reference ("registry.example/repo:tag",
// "...@sha256:..."), a local OCI image layout ("oci-layout:<dir>[:tag|@digest]")
// or a `docker save` archive ("docker-archive:<file>[:repo:tag]"). Registries
// are reached with go-containerregistry (pkg/v1/remote), HTTPS only unless
// the registry is listed with WithInsecureRegistries. Credentials come from
// the pool (sandbox.RegistryAuth): username and password as basic auth, or a
// bearer token; they are never logged nor put in errors.
//
// # On disk
//
//	<root>/blobs/sha256/<hex>     manifests, configs and compressed layers, by
//	                              digest (the blobs directory of an OCI layout)
//	<root>/rootfs/sha256-<hex>    an unpacked image, by manifest digest (no ':'
//	                              in the name: overlayfs options cannot take it)
//	<root>/tmp/                   work in progress, emptied by NewStore
//
// A blob is written to tmp, checked against its size and digest, synced and
// renamed into place; an image is unpacked into tmp, synced (syncfs) and
// renamed into place. So whatever is in blobs or rootfs is complete, and a
// crash leaves only files in tmp, which are never used. <root>/rootfs and
// <root>/tmp are mode 0700: images may hold set-user-ID programs, which host
// users must not reach.
//
// # Unpacking untrusted layers
//
// Layers are applied in order with OCI whiteouts (".wh.<name>" removes
// <name> from lower layers, ".wh..wh..opq" empties a directory of what lower
// layers put there). All writes go through an os.Root on the new directory,
// so nothing outside it can be created, changed or removed, and paths are
// resolved as the container will see them:
//   - absolute entry names are taken relative to the root; names that climb
//     out of it with ".." are refused, and so is the image;
//   - a symlink met on the way to an entry's parent is followed inside the
//     root: an absolute target starts at the root, ".." stops there;
//   - an entry's own name is never followed: what is there (file, symlink,
//     directory) is removed first, and files are created with O_EXCL;
//   - hard links must point to an existing non-directory inside the root,
//     resolved the same way;
//   - device nodes and FIFOs are not created (a sandbox gets its devices
//     from the runtime); extended attributes (file capabilities included) are
//     not applied;
//   - modes (with set-user-ID, set-group-ID and sticky bits), owners (when
//     running as root; otherwise files belong to the server's user),
//     modification times and symlink targets are kept;
//   - the uncompressed size of all layers, the bytes written and the number
//     of entries are bounded (WithMaxSize, WithMaxEntries), and so are path
//     lengths, symlink hops and path lookups, against tar and gzip bombs;
//   - each layer's content must match its diff ID from the image config, and
//     every blob its digest.
//
// # Sharing and removal
//
// Concurrent pulls share work: one resolution per reference and
// credentials, one download and unpack per image. Blobs are shared between
// images. Remove deletes an image's root file system and the blobs no other
// image uses; it is the caller's job not to remove an image in use.
package image
