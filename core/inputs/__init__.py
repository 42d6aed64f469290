"""What a comparison is given: its data (uploads and samples), its model source (bundled, local, hub) and the texts
static int8 calibrates on."""
