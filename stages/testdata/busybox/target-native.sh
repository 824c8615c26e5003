echo "built natively on $(uname -m)" > /etc/built-on
cat "$GREETING_FILE"
