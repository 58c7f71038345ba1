"""REST handlers of the SciTeX extension, one module per resource."""
