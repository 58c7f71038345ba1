#!/usr/bin/env bash
# The official nginx image's template step (20-envsubst-on-templates.sh):
# NGINX_ENVSUBST_TEMPLATE_DIR/**/*.template -> NGINX_ENVSUBST_OUTPUT_DIR/** without
# the suffix, substituting only the defined variables whose names match
# NGINX_ENVSUBST_FILTER; then /docker-entrypoint.d/*.sh and the command.
set -euo pipefail

if [[ ${1:-} == nginx || ${1:-} == nginx-debug ]]; then
  template_dir=${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}
  suffix=${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}
  output_dir=${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}
  filter=${NGINX_ENVSUBST_FILTER:-}
  # shellcheck disable=SC2016 # printf builds envsubst's list of ${NAME}s
  defined_envs=$(printf '${%s} ' $(awk "END { for (name in ENVIRON) { print ( name ~ /${filter}/ ) ? name : \"\" } }" </dev/null))
  if [[ -d $template_dir ]]; then
    while IFS= read -r -d '' template; do
      relative=${template#"$template_dir/"}
      output="$output_dir/${relative%"$suffix"}"
      mkdir -p "$(dirname "$output")"
      echo "$0: rendering $template to $output"
      envsubst "$defined_envs" <"$template" >"$output"
    done < <(find "$template_dir" -follow -type f -name "*$suffix" -print0)
  fi
  for f in /docker-entrypoint.d/*.sh; do
    [[ -x $f ]] && "$f"
  done
fi
exec "$@"
