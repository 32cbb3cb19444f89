# A read-only troubleshooting session, one command per line, as an operator (or an agent)
# types them on a Debian web host: what is it, is it healthy, what do the logs say.
cat /etc/os-release
uname -a
uptime
hostname -f
df -h
df -i /
free -m
nproc
lscpu | head -20
ps aux --sort=-%cpu | head -15
ps -ef | grep -v grep | grep sshd
pgrep -a sshd
top -b -n 1 | head -20
vmstat 1 3
ss -ltnp
ss -s
ip -br addr
ip route show
ip -s link show lo
cat /etc/resolv.conf
getent hosts localhost
ping -c 1 127.0.0.1
systemctl --no-pager status ssh
systemctl list-units --type=service --state=failed --no-pager
systemctl is-active ssh || true
journalctl -u ssh --since today --no-pager | tail -n 20
journalctl -p err -b --no-pager | tail -n 20
dmesg -T 2>/dev/null | tail -n 20
tail -n 50 /var/log/dpkg.log
grep -i error /var/log/dpkg.log | tail -n 5
ls -la /var/log | head -20
du -sh /var/log/* 2>/dev/null | sort -h | tail -n 5
find /var/log -name '*.log' -mtime -1 -size +1k 2>/dev/null | head
stat /etc/passwd
wc -l /etc/passwd
cut -d: -f1,7 /etc/passwd | grep -v nologin
awk -F: '$3 >= 1000 {print $1}' /etc/passwd
sed -n '1,5p' /etc/hosts
sort /etc/shells | uniq -c
id
who
last -n 5 2>/dev/null || true
env | grep -i ^lang
date -u
timedatectl status 2>/dev/null || date
dpkg -l | grep -i openssh
apt list --installed 2>/dev/null | grep -c installed
sha256sum /etc/hostname
git -C /etc log -1 2>/dev/null || echo "no git in /etc"
kubectl get pods -A 2>/dev/null || echo "no cluster"
docker ps 2>/dev/null || echo "no docker"
openssl version
curl -sS -o /dev/null -w '%{http_code}\n' http://127.0.0.1:1/ || true
psql -c 'select 1' 2>/dev/null || true
