# JupyterHub configuration for SciTeX Hub. Site settings live in one YAML file
# ($SCITEX_CONFIG, default: scitex.yaml beside this file), validated here:
# an invalid file stops the hub with the key and the reason.
import sys

from jupyterhub_config.apply import apply_all
from jupyterhub_config.settings import SettingsError, load_settings

try:
    apply_all(c, load_settings())  # type: ignore[name-defined]  # JupyterHub defines `c`
except SettingsError as error:
    sys.exit(f"SciTeX Hub: invalid site configuration:\n{error}")
