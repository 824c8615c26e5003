# Sourced by CI's check scripts: registry_start DIR runs a docker-registry on a free loopback
# port with its storage in DIR and sets registry_addr (127.0.0.1:PORT) and registry_log;
# registry_stop stops it and removes DIR (also from an EXIT trap: calling it twice is fine).
registry_pid="" registry_dir="" registry_addr="" registry_log=""
registry_start() {
	local port
	registry_dir="$1"
	port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
	cat > "$registry_dir/config.yml" <<-CONFIG
		version: 0.1
		log:
		  level: warn
		storage:
		  filesystem:
		    rootdirectory: $registry_dir/storage
		http:
		  addr: 127.0.0.1:$port
	CONFIG
	registry_log="$registry_dir/registry.log"
	docker-registry serve "$registry_dir/config.yml" > "$registry_log" 2>&1 &
	registry_pid=$! registry_addr="127.0.0.1:$port"
	for _ in $(seq 100); do curl -sf "http://$registry_addr/v2/" > /dev/null && return 0; sleep 0.1; done
	echo "docker-registry on $registry_addr did not answer; its log:" >&2
	cat "$registry_log" >&2
	return 1
}
registry_stop() {
	if [ -n "$registry_pid" ]; then
		kill "$registry_pid" 2> /dev/null || true
		wait "$registry_pid" 2> /dev/null || true
	fi
	[ -z "$registry_dir" ] || rm -rf "$registry_dir"
	registry_pid="" registry_dir="" registry_addr="" registry_log=""
}
