#! status=0 compare=dash
APP_PORT=8080
mkdir -p etc/app && cat > etc/app/app.conf <<EOF
listen = 0.0.0.0:${APP_PORT}
workers = $((2 * 2))
log = "/var/log/app.log"
EOF
cat etc/app/app.conf
