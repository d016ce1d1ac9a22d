#!/bin/sh
# The helm that kubernetes.core.helm runs (binary_path): the helm named by TRITON_FIL_HELM (default: helm on
# PATH). The pinned kubernetes.core (6.2.0, from ansible 12) speaks helm 3; where helm 4 differs, the major
# is read from `helm version` (never assumed from the file name) and, for helm 4 or later only:
# - `helm list ... --all` loses --all: helm 4 removed the flag (it lists releases in every status by default;
#   helm/helm#31295, #31784), and kubernetes.core asks it after every install or upgrade and before every
#   uninstall, so each change failed after the release was written and no uninstall ran. kubernetes.core
#   6.4.0 leaves it out on helm 4 the same way (kubernetes.core#1090).
# - `helm install|upgrade ... --atomic` becomes --rollback-on-failure: helm 4 renamed it (the old name is a
#   deprecated alias that prints a warning on every call, and helm/helm#31900 reports install without it);
#   kubernetes.core 6.4+ sends the new name on helm 4 (kubernetes.core#1143, #1144).
# - `helm plugin list` is printed in helm 3's three columns (NAME, VERSION, DESCRIPTION): helm 4 prints six
#   (NAME VERSION TYPE APIVERSION PROVENANCE SOURCE), on which kubernetes.core 6.2.0's parser fails with
#   "too many values to unpack" as soon as any plugin is installed (kubernetes.core#1038, #1041).
# A helm whose version cannot be read, and helm 3, get every argument unchanged.
real=${TRITON_FIL_HELM:-helm}

case $1 in
  list | install | upgrade | plugin) ;;
  *) exec "$real" "$@" ;;
esac
version=$("$real" version --template '{{.Version}}' 2>/dev/null)
major=${version#v}
major=${major%%.*}
case $major in
  '' | *[!0-9]*) exec "$real" "$@" ;;
esac
[ "$major" -ge 4 ] || exec "$real" "$@"

if [ "$1" = plugin ] && [ "$2" = list ] && [ $# -eq 2 ]; then
  listing=$("$real" plugin list) || exit
  printf '%s\n' "$listing" | awk -F '\t' '
    NR == 1 { print "NAME\tVERSION\tDESCRIPTION"; next }
    { gsub(/ +$/, "", $1); gsub(/ +$/, "", $2); d = "";
      for (i = 3; i <= NF; i++) { v = $i; gsub(/ +$/, "", v); d = d (d == "" ? "" : " ") v }
      print $1 "\t" $2 "\t" d }'
  exit 0
fi

command=$1
for arg do
  shift
  case $command:$arg in
    list:--all) ;;
    install:--atomic | upgrade:--atomic) set -- "$@" --rollback-on-failure ;;
    *) set -- "$@" "$arg" ;;
  esac
done
exec "$real" "$@"
