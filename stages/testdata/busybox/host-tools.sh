mkdir -p /opt/host-tools
{
	cat /sources/greeting.txt
	echo "prepared on $(uname -m) for $SERPENT_TARGET_TRIPLE"
} > /opt/host-tools/payload.txt
echo "host-tools ready"
