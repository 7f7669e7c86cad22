"""Server-rendered operator pages (Jinja2, Russian with English available, a light
touch of JS). Every asset is served by the head-end itself, so the pages work on a
closed network; the map draws its markers on a plain coordinate canvas when no
tile server is reachable."""
