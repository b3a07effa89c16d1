package docker

import (
	"context"
	"errors"
	"fmt"

	"github.com/chaoskv/chaos/docker/lazyfs"
)

// CleanReport counts what Clean removed.
type CleanReport struct {
	Containers int // containers removed
	Networks   int // networks removed
	Images     int // images removed
	Mounts     int // stale lazyfs mounts detached
}

// Clean removes what runs left behind, found by label: the containers and
// networks of run runID, or of every run when runID is empty, and, when
// images is set, every node image this package imported. With runID empty
// it also detaches the lazyfs mounts of runs that died without unmounting
// (those whose server is gone; live runs' mounts stay).
func (d *Docker) Clean(ctx context.Context, runID string, images bool) (CleanReport, error) {
	var rep CleanReport
	var errs []error
	cs, err := d.e.ContainersWithLabel(ctx, LabelRun, runID)
	if err != nil {
		return rep, fmt.Errorf("list containers: %w", err)
	}
	for _, id := range cs {
		if err := d.e.ContainerRemove(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("remove container %.12s: %w", id, err))
			continue
		}
		rep.Containers++
	}
	ns, err := d.e.NetworksWithLabel(ctx, LabelRun, runID)
	if err != nil {
		return rep, errors.Join(append(errs, fmt.Errorf("list networks: %w", err))...)
	}
	for _, id := range ns {
		if err := d.e.NetworkRemove(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("remove network %.12s: %w", id, err))
			continue
		}
		rep.Networks++
	}
	if images {
		is, err := d.e.ImagesWithLabel(ctx, LabelImage)
		if err != nil {
			return rep, errors.Join(append(errs, fmt.Errorf("list images: %w", err))...)
		}
		for _, id := range is {
			if err := d.e.ImageRemove(ctx, id); err != nil {
				errs = append(errs, fmt.Errorf("remove image %.19s: %w", id, err))
				continue
			}
			rep.Images++
		}
	}
	if runID == "" {
		stale, err := lazyfs.UnmountStale()
		rep.Mounts = len(stale)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}
