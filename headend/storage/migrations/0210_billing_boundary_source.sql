-- How each boundary value of a frozen snapshot was obtained (billing/boundary.py): the
-- meter's own day/month-start archive, a poll or manual reading at the boundary, an
-- interpolation, VEE's substitute, the nearest reading, or the first/last reading in the
-- period. NULL for rows frozen before this was kept.
ALTER TABLE billing_snapshots ADD COLUMN start_boundary_source text;
ALTER TABLE billing_snapshots ADD COLUMN end_boundary_source text;
