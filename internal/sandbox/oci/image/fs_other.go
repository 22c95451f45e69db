//go:build !linux

package image

import "io/fs"

// syncFS is a no-op where syncfs(2) is missing; images are only run on
// Linux.
func syncFS(dir string) error { return nil }

func fileID(fs.FileInfo) (dev, ino uint64) { return 0, 0 }
