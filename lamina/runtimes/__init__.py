"""What a managed runtime is: the catalog of identifiers and the bootstraps Lamina ships."""
