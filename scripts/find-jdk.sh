# Sourced by ./jtune and ./mvnw25. Prints the home of a JDK >= 25, or explains what to install.
jtune_java_major() {  # $1 = JAVA_HOME candidate
  local v
  v="$("$1/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')" || return 1
  echo "${v%%.*}"
}
jtune_find_jdk() {
  local c m
  for c in "${JTUNE_JAVA_HOME:-}" "${JAVA_HOME:-}" /usr/lib/jvm/temurin-2[5-9]* /usr/lib/jvm/temurin-[3-9]* \
           /usr/lib/jvm/*-2[5-9]* /usr/lib/jvm/java-2[5-9]* /usr/lib/jvm/jdk-2[5-9]* /opt/jdk-2[5-9]* \
           /opt/java/openjdk "$HOME"/.sdkman/candidates/java/2[5-9]* ; do
    [ -n "$c" ] && [ -x "$c/bin/javac" ] || continue
    m="$(jtune_java_major "$c")" || continue
    if [ -n "$m" ] && [ "$m" -ge 25 ] 2>/dev/null; then echo "$c"; return 0; fi
  done
  cat >&2 <<'MSG'
jtune: no JDK 25 or newer found (looked at $JTUNE_JAVA_HOME, $JAVA_HOME and /usr/lib/jvm).
jtune needs Java 25 for the Vector API and the FFM API. Install one, e.g. Eclipse Temurin 25
(https://adoptium.net, or 'apt-get install temurin-25-jdk' from Adoptium's apt repository),
then set JAVA_HOME or JTUNE_JAVA_HOME to its directory.
MSG
  return 1
}
