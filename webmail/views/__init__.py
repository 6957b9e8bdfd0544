"""One module per area of the webmail; each exports ROUTES (a list of Starlette routes)."""
