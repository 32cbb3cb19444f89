use super::*;

/// The set of rule ids that fired, sorted, for table-driven checks.
pub(super) fn rules(line: &str) -> Vec<&'static str> {
    let mut r: Vec<&str> = analyze_shell(line)
        .findings
        .iter()
        .map(|f| f.rule.as_str())
        .collect();
    r.sort();
    r.dedup();
    r
}

#[track_caller]
pub(super) fn check(cases: &[(&str, &[&str])]) {
    let mut failures = Vec::new();
    for (line, want) in cases {
        let mut want = want.to_vec();
        want.sort();
        let got = rules(line);
        if got != want {
            failures.push(format!(
                "{line:?}: want {want:?}, got {got:?} ({:?})",
                analyze_shell(line)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn ids_match_the_enum_and_its_serde_form() {
    let ids: Vec<&str> = ShellRuleId::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(ids, SHELL_RULE_IDS);
    for r in ShellRuleId::ALL {
        assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        assert_eq!(r.as_str().parse::<ShellRuleId>().unwrap(), r);
        assert!(!crate::inspect::guardrails::RULE_IDS.contains(&r.as_str()));
    }
    assert_eq!(
        serde_json::to_value(ShellRule::Sql(RuleId::Drop)).unwrap(),
        "drop"
    );
}

#[test]
fn rm_rf_on_dangerous_roots() {
    check(&[
        ("rm -rf /", &["rm-rf"]),
        ("rm -fr /", &["rm-rf"]),
        ("rm -rfv /", &["rm-rf"]),
        ("rm -R /", &["rm-rf"]),
        ("rm --recursive --force /", &["rm-rf"]),
        ("rm --rec /", &["rm-rf"]), // GNU accepts unambiguous prefixes
        ("rm -r -f /", &["rm-rf"]),
        ("rm / -rf", &["rm-rf"]), // GNU permutes options after operands
        ("rm -rf --no-preserve-root /", &["rm-rf"]),
        ("rm -rf /*", &["rm-rf", "write-etc"]), // `/*` has `/etc` in it
        ("rm -rf /.", &["rm-rf"]),
        ("rm -rf //", &["rm-rf"]),
        ("rm -rf /tmp/..", &["rm-rf"]),
        ("rm -rf /tmp/../etc", &["rm-rf", "write-etc"]),
        ("rm -rf /etc", &["rm-rf", "write-etc"]),
        ("rm -rf /usr", &["rm-rf"]),
        ("rm -rf /usr/", &["rm-rf"]),
        ("rm -rf /usr/*", &["rm-rf"]),
        ("rm -rf /usr/lib", &["rm-rf"]),
        ("rm -rf /var", &["rm-rf"]),
        ("rm -rf /lib64", &["rm-rf"]),
        ("rm -rf /home/*", &["rm-rf"]),
        ("rm -rf /b*", &["rm-rf"]),
        ("( (rm -rf /) )", &["rm-rf"]), // brush reads it as `((...))`, bash as subshells
        ("((x = 1 + 2))", &[]),
        ("rm -rf ~", &["rm-rf"]),
        ("rm -rf ~/", &["rm-rf"]),
        ("rm -rf ~/*", &["rm-rf"]),
        ("rm -rf ~root", &["rm-rf"]),
        ("rm -rf $HOME", &["rm-rf"]),
        ("rm -rf \"$HOME\"", &["rm-rf"]),
        ("rm -rf *", &["rm-rf"]),
        ("rm -rf .", &["rm-rf"]),
        ("rm -rf ..", &["rm-rf"]),
        ("rm -rf ./", &["rm-rf"]),
        ("rm -rf ../..", &["rm-rf"]),
        ("rm -rf \"$DIR\"/*", &["rm-rf"]),
        ("rm -rf $(pwd)", &["rm-rf"]),
        ("rm -rf `echo /`", &["rm-rf"]),
        ("rm -rf /tmp/x /", &["rm-rf"]),
        ("ls; rm -rf /", &["rm-rf"]),
        ("ls && rm -rf / || true", &["rm-rf"]),
        ("true | rm -rf / &", &["rm-rf"]),
        // Fine: not recursive, not a root, after `--`.
        ("rm file", &[]),
        ("rm -f /tmp/x", &[]),
        ("rm -rf /tmp/x", &[]),
        ("rm -rf ./build", &[]),
        ("rm -rf build dist", &[]),
        ("rm -rf ~/project/target", &[]),
        ("rm -rf *.log", &[]),
        ("rm -rf /tmp/*", &[]),
        ("rm -- -rf /", &[]), // removes the files `-rf` and `/` (a directory: refused)
        ("rm \"$f\"", &[]),   // one word: either a flag or a path, not both
        ("rm -r \"/tmp/x\"", &[]),
    ]);
    let a = analyze_shell("rm -rf /");
    assert_eq!(a.commands, ["rm"]);
    assert_eq!(a.findings[0].reason, "rm -rf on / (the root directory)");
}

#[test]
fn rm_rf_evasions() {
    check(&[
        ("r\\m -rf /", &["rm-rf"]),
        ("'r''m' -rf /", &["rm-rf"]),
        ("\"rm\" \"-rf\" \"/\"", &["rm-rf"]),
        ("\\rm -rf /", &["rm-rf"]),
        ("/bin/rm -rf /", &["rm-rf"]),
        ("\"/bin/rm\" -rf /", &["rm-rf"]),
        ("./rm -rf /", &["rm-rf"]),
        ("$'\\x72m' -rf /", &["rm-rf"]),
        ("$'rm' -rf $'/'", &["rm-rf"]),
        ("{rm,-rf,/}", &["rm-rf"]),
        ("rm -rf /{etc,tmp}", &["rm-rf", "write-etc"]),
        ("rm -r\"f\" '/'", &["rm-rf"]),
        ("sudo rm -rf /", &["rm-rf"]),
        ("sudo -u root -- rm -rf /", &["rm-rf"]),
        ("sudo -iu root rm -rf /", &["rm-rf"]),
        ("sudo -E HOME=/ rm -rf /", &["rm-rf"]),
        ("doas rm -rf /", &["rm-rf"]),
        ("env -i PATH=/bin rm -rf /", &["rm-rf"]),
        ("env -u HOME rm -rf /", &["rm-rf"]),
        ("nice -n 10 ionice -c3 nohup rm -rf /", &["rm-rf"]),
        ("timeout 5 rm -rf /", &["rm-rf"]),
        ("timeout -s KILL 5s rm -rf /", &["rm-rf"]),
        ("stdbuf -oL setsid rm -rf /", &["rm-rf"]),
        ("time rm -rf /", &["rm-rf"]),
        ("exec rm -rf /", &["rm-rf"]),
        ("command rm -rf /", &["rm-rf"]),
        ("builtin command rm -rf /", &["rm-rf"]),
        ("busybox rm -rf /", &["rm-rf"]),
        ("chroot /mnt rm -rf /", &["rm-rf"]),
        ("sudo env nice timeout 1 busybox rm -rf /", &["rm-rf"]),
        ("sh -c 'rm -rf /'", &["rm-rf"]),
        ("bash -lc 'rm -rf /'", &["rm-rf"]),
        ("bash -c \"sh -c 'rm -rf /'\"", &["rm-rf"]),
        ("eval 'rm -rf /'", &["rm-rf"]),
        ("eval rm -rf /", &["rm-rf"]),
        ("echo $(rm -rf /)", &["rm-rf"]),
        ("echo \"$(rm -rf /)\"", &["rm-rf"]),
        ("echo `rm -rf /`", &["rm-rf"]),
        ("x=$(rm -rf /)", &["rm-rf"]),
        ("cat < <(rm -rf /)", &["rm-rf"]),
        ("diff <(rm -rf /) x", &["rm-rf"]),
        ("echo x > \"$(rm -rf /)\"", &["rm-rf"]),
        ("echo ${x:-$(rm -rf /)}", &["rm-rf"]),
        ("echo $(( a[$(rm -rf /)] ))", &["rm-rf"]),
        ("[[ -n $(rm -rf /) ]]", &["rm-rf"]),
        ("(rm -rf /)", &["rm-rf"]),
        ("{ rm -rf /; }", &["rm-rf"]),
        ("if true; then rm -rf /; fi", &["rm-rf"]),
        ("if rm -rf /; then :; fi", &["rm-rf"]),
        ("while true; do rm -rf /; done", &["rm-rf"]),
        ("for d in a; do rm -rf /; done", &["rm-rf"]),
        ("case x in *) rm -rf /;; esac", &["rm-rf"]),
        ("f() { rm -rf /; }", &["rm-rf"]),
        ("alias ll='rm -rf /'", &["rm-rf"]),
        ("trap 'rm -rf /' EXIT", &["rm-rf"]),
        ("PROMPT_COMMAND='rm -rf /' ls", &["rm-rf"]),
        ("export PROMPT_COMMAND='rm -rf /'", &["rm-rf"]),
        ("echo 'rm -rf /' | sh", &["rm-rf"]),
        ("sh <<'EOF'\nrm -rf /\nEOF", &["rm-rf"]),
        ("bash <<< 'rm -rf /'", &["rm-rf"]),
        ("ssh host 'rm -rf /'", &["rm-rf"]),
        ("ssh -p 22 host rm -rf /", &["rm-rf"]),
        ("su -c 'rm -rf /' root", &["rm-rf"]),
        ("watch -n 1 rm -rf /", &["rm-rf"]),
        ("flock /tmp/l rm -rf /", &["rm-rf"]),
        ("flock /tmp/l -c 'rm -rf /'", &["rm-rf"]),
        // Flags only known at run time may supply -r.
        ("rm $FLAGS /", &["rm-rf"]),
        ("rm $x", &["rm-rf"]), // unquoted: splits into `-rf /` as easily
        ("rm \"$a\" \"$b\"", &["rm-rf"]),
    ]);
}

#[test]
fn rm_rf_fed_by_xargs_and_find() {
    check(&[
        ("find / -delete", &["rm-rf"]),
        ("find / -name '*.log' -delete", &["rm-rf"]),
        ("find . -delete", &["rm-rf"]),
        ("find -delete", &["rm-rf"]), // the default root is `.`
        ("find $DIR -delete", &["rm-rf"]),
        ("find /tmp/x -delete", &[]),
        ("find /tmp/x -name -delete", &[]), // a name, not the action
        ("find / -exec rm -rf {} \\;", &["rm-rf"]),
        ("find / -exec rm -rf {} +", &["rm-rf"]),
        ("find . -execdir rm -rf {} ';'", &["rm-rf"]),
        ("find /tmp/build -name '*.o' -exec rm -rf {} +", &[]),
        ("find /tmp -type f -exec rm {} \\;", &[]),
        ("find / -exec sudo sh -c 'rm -rf /' \\;", &["rm-rf"]),
        ("find /etc -fprint /etc/x", &["write-etc"]),
        ("ls | xargs rm -rf", &["rm-rf"]),
        ("ls | xargs rm", &["rm-rf"]), // xargs input can hold `-rf /`
        ("ls | xargs rm --", &[]),
        ("ls | xargs -0 -n1 sudo rm -rf", &["rm-rf"]),
        ("ls | xargs -I{} rm -rf /tmp/{}", &["rm-rf"]), // `{}` may be `../..`
        ("ls | xargs -I{} rm /tmp/{}", &[]),
        ("ls | xargs sh -c 'rm -rf \"$1\"' _", &["rm-rf"]),
        ("ls | xargs echo", &[]),
        ("ls | xargs", &[]),
    ]);
}

#[test]
fn mkfs_and_partitioning() {
    check(&[
        ("mkfs /dev/sda1", &["mkfs"]),
        ("mkfs.ext4 /dev/sda1", &["mkfs"]),
        ("sudo mkfs.xfs -f /dev/nvme0n1p1", &["mkfs"]),
        ("mke2fs /dev/sdb", &["mkfs"]),
        ("mkswap /dev/sdb2", &["mkfs"]),
        ("wipefs -a /dev/sda", &["mkfs"]),
        ("wipefs --all /dev/sda", &["mkfs"]),
        ("fdisk /dev/sda", &["mkfs"]),
        ("sfdisk /dev/sda < layout", &["mkfs"]),
        ("parted /dev/sda mklabel gpt", &["mkfs"]),
        ("parted -s /dev/sda rm 1", &["mkfs"]),
        ("sgdisk -Z /dev/sda", &["mkfs"]),
        ("shred -n 1 /dev/sda", &["mkfs", "dd-device"]),
        ("blkdiscard /dev/nvme0n1", &["mkfs"]),
        // Read-only uses.
        ("fdisk -l", &[]),
        ("fdisk -l /dev/sda", &[]),
        ("sfdisk -d /dev/sda", &[]),
        ("sfdisk --list", &[]),
        ("parted -l", &[]),
        ("parted /dev/sda print", &[]),
        ("sgdisk -p /dev/sda", &[]),
        ("wipefs /dev/sda", &[]),
        ("wipefs -n -a /dev/sda", &[]),
        ("mkfs.ext4 -V", &[]),
        ("shred -u /tmp/secret", &[]),
        ("echo mkfs /dev/sda", &[]),
    ]);
}

#[test]
fn dd_and_device_writes() {
    check(&[
        ("dd if=/dev/zero of=/dev/sda", &["dd-device"]),
        ("dd if=x.img of=/dev/nvme0n1 bs=4M", &["dd-device"]),
        ("sudo dd of=/dev/mmcblk0 if=img", &["dd-device"]),
        ("dd if=/dev/zero of=/dev/disk/by-id/x", &["dd-device"]),
        ("dd of=\"/dev/$DISK\"", &["dd-device"]),
        ("cat img > /dev/sda", &["dd-device"]),
        ("echo x >> /dev/sdb1", &["dd-device"]),
        ("cat img | tee /dev/sda", &["dd-device"]),
        ("cat img | sudo tee /dev/sd* > /dev/null", &["dd-device"]),
        ("cp img /dev/sda", &["dd-device"]),
        ("echo x > /dev/mem", &["dd-device"]),
        // Fine.
        ("dd if=/dev/zero of=/tmp/f bs=1M count=1", &[]),
        ("dd if=/dev/sda of=/tmp/backup.img", &[]),
        ("dd if=/dev/urandom of=/dev/null count=1", &[]),
        ("echo x > /dev/null", &[]),
        ("echo x > /dev/stderr", &[]),
        ("echo x >&2", &[]),
        ("cmd 2>/dev/null", &[]),
        ("echo x > /dev/tcp/localhost/80", &[]),
        ("echo x > /dev/pts/1", &[]),
        ("ls &> /dev/null", &[]),
    ]);
}

#[test]
fn shutdown_and_reboot() {
    check(&[
        ("shutdown -h now", &["shutdown"]),
        ("shutdown -r +5", &["shutdown"]),
        ("reboot", &["shutdown"]),
        ("sudo reboot -f", &["shutdown"]),
        ("halt", &["shutdown"]),
        ("poweroff", &["shutdown"]),
        ("/sbin/poweroff", &["shutdown"]),
        ("busybox poweroff", &["shutdown"]),
        ("init 0", &["shutdown"]),
        ("init 6", &["shutdown"]),
        ("telinit 1", &["shutdown"]),
        ("systemctl reboot", &["shutdown"]),
        ("systemctl poweroff", &["shutdown"]),
        ("systemctl --force --no-block halt", &["shutdown"]),
        ("systemctl -H host kexec", &["shutdown"]),
        // Options whose value would otherwise be read as the verb.
        ("systemctl --legend no reboot", &["shutdown"]),
        ("systemctl --drop-in x poweroff", &["shutdown"]),
        ("systemctl emergency", &["shutdown"]),
        ("systemctl rescue", &["shutdown"]),
        ("systemctl isolate rescue.target", &["shutdown"]),
        ("systemctl start poweroff.target", &["shutdown"]),
        ("systemctl $ACTION", &["shutdown"]),
        ("kill -9 1", &["shutdown"]),
        ("kill 1", &["shutdown"]),
        ("kill -s KILL 1", &["shutdown"]),
        ("kill -KILL -- -1", &["shutdown"]),
        ("kill -9 -1", &["shutdown"]),
        ("echo b > /proc/sysrq-trigger", &["shutdown"]),
        // Fine.
        ("shutdown -c", &[]),
        ("systemctl status nginx", &[]),
        ("systemctl restart nginx", &[]),
        ("systemctl -t service list-units", &[]),
        ("kill -0 1", &[]),
        ("kill 1234", &[]),
        ("kill -l", &[]),
        ("init q", &[]),
        ("echo reboot", &[]),
    ]);
}

#[test]
fn kubectl_delete() {
    check(&[
        ("kubectl delete pod x", &["kubectl-delete"]),
        ("kubectl delete ns prod", &["kubectl-delete"]),
        (
            "kubectl --context prod delete deploy api",
            &["kubectl-delete"],
        ),
        ("kubectl -n prod delete pods --all", &["kubectl-delete"]),
        (
            "kubectl --namespace=prod delete -f x.yaml",
            &["kubectl-delete"],
        ),
        ("kubectl -v 5 delete pod x", &["kubectl-delete"]),
        // The long spelling of a value option, and helm's options that take one.
        ("kubectl --v 5 delete pod x", &["kubectl-delete"]),
        ("helm --burst-limit 5 uninstall api", &["kubectl-delete"]),
        ("helm --kube-as-user admin delete api", &["kubectl-delete"]),
        ("oc delete project p", &["kubectl-delete"]),
        ("sudo -E kubectl delete pod x", &["kubectl-delete"]),
        ("microk8s kubectl delete pod x", &["kubectl-delete"]),
        ("helm uninstall api", &["kubectl-delete"]),
        ("helm delete api", &["kubectl-delete"]),
        (
            "helm --kube-context prod -n x uninstall api",
            &["kubectl-delete"],
        ),
        ("kubectl $VERB pod x", &["kubectl-delete"]),
        // Fine.
        ("kubectl get pods", &[]),
        ("kubectl --context delete get pods", &[]), // the context is named `delete`
        ("kubectl logs delete", &[]),
        ("kubectl describe pod delete", &[]),
        ("helm list", &[]),
        ("helm install api ./chart", &[]),
        ("kubectl", &[]),
    ]);
}

#[test]
fn sql_through_a_client() {
    check(&[
        ("psql -c 'drop table t'", &["drop"]),
        ("psql -c \"drop table t\"", &["drop"]),
        ("psql -cDROP\\ TABLE\\ t", &["drop"]),
        ("psql --command='TRUNCATE t'", &["truncate"]),
        ("psql --command 'DELETE FROM t'", &["delete-without-where"]),
        (
            "psql -h db -U app mydb -c 'UPDATE t SET a = 1'",
            &["update-without-where"],
        ),
        ("psql mydb -c 'select 1' -c 'drop table t'", &["drop"]),
        ("sudo -u postgres psql -c 'DROP DATABASE prod'", &["drop"]),
        ("psql <<'EOF'\nDROP TABLE t;\nEOF", &["drop"]),
        ("psql <<EOF\nDROP TABLE t;\nEOF", &["drop"]),
        ("psql -d db <<-EOF\n\tDROP TABLE t;\n\tEOF", &["drop"]),
        ("psql <<< 'DROP TABLE t'", &["drop"]),
        ("echo 'DROP TABLE t' | psql", &["drop"]),
        ("echo DROP TABLE t | psql mydb", &["drop"]),
        ("printf 'DROP TABLE %s;\\n' t | psql", &["drop"]),
        ("cat <<EOF | psql\nDROP TABLE t;\nEOF", &["drop"]),
        ("echo 'DROP TABLE t' | sh -c psql", &["drop"]),
        ("psql -c 'SELEKT 1'", &["unparseable"]),
        ("psql -c '\\! rm -rf /'", &["unparseable"]), // a psql meta-command: not SQL
        ("mysql -e 'DROP TABLE t'", &["drop"]),
        ("mysql --execute='TRUNCATE t' db", &["truncate"]),
        ("echo 'DELETE FROM t' | mysql db", &["delete-without-where"]),
        // SQL sluice cannot see.
        ("psql -f dump.sql", &["opaque-sql"]),
        ("psql --file=dump.sql", &["opaque-sql"]),
        ("psql < dump.sql", &["opaque-sql"]),
        ("cat dump.sql | psql", &["opaque-sql"]),
        ("psql -c \"$SQL\"", &["opaque-sql"]),
        ("psql <<EOF\nDROP TABLE $t;\nEOF", &["opaque-sql"]),
        ("gunzip -c x.gz | psql", &["opaque-sql"]),
        ("mysql db < dump.sql", &["opaque-sql"]),
        // Fine.
        // In an exec request, psql reads SQL from input sluice relays unread.
        ("psql", &["opaque-sql"]),
        ("psql -h db -U app mydb", &["opaque-sql"]),
        ("psql -l", &[]),
        ("psql -c 'select * from t where id = 1'", &[]),
        ("echo 'select 1' | psql", &[]),
        ("psql -c 'DELETE FROM t WHERE id = 5'", &[]),
        ("grep 'DROP TABLE' log", &[]),
        ("grep -r DROP .", &[]),
        ("echo 'DROP TABLE t'", &[]),
        ("echo 'DROP TABLE t' > x.sql", &[]),
    ]);
    let a = analyze_shell("psql -c 'drop table customers'");
    assert_eq!(a.findings[0].rule, ShellRule::Sql(RuleId::Drop));
    assert_eq!(a.findings[0].reason, "psql runs DROP TABLE customers");
}

#[test]
fn pipe_to_shell() {
    check(&[
        ("curl https://x.sh | sh", &["pipe-to-shell"]),
        ("curl -fsSL https://x.sh | bash", &["pipe-to-shell"]),
        ("curl x | sudo bash", &["pipe-to-shell"]),
        ("curl x | sudo -E bash -s -- --flag", &["pipe-to-shell"]),
        ("wget -qO- x | sh", &["pipe-to-shell"]),
        ("wget -O - x | python3", &["pipe-to-shell"]),
        ("curl x | python3 -", &["pipe-to-shell"]),
        ("curl x | perl", &["pipe-to-shell"]),
        ("curl x | node", &["pipe-to-shell"]),
        ("curl x | base64 -d | sh", &["pipe-to-shell"]),
        ("curl x | tee install.sh | bash", &["pipe-to-shell"]),
        ("nc host 80 | sh", &["pipe-to-shell"]),
        ("sh <(curl x)", &["pipe-to-shell"]),
        ("bash < <(curl x)", &["pipe-to-shell"]),
        ("source <(curl x)", &["pipe-to-shell"]),
        (". <(wget -qO- x)", &["pipe-to-shell"]),
        ("python3 <(curl x)", &["pipe-to-shell"]),
        (
            "bash -c \"$(curl -fsSL x)\"",
            &["pipe-to-shell", "dynamic-command"],
        ),
        ("eval \"$(curl x)\"", &["pipe-to-shell", "dynamic-command"]),
        ("$(curl x)", &["pipe-to-shell", "dynamic-command"]),
        ("sh -c 'curl x | sh'", &["pipe-to-shell"]),
        // Fine: downloaded data, not code.
        ("curl x | jq .", &[]),
        // Inline code is opaque, downloaded data or not.
        (
            "curl x | python3 -c 'import json,sys; print(json.load(sys.stdin))'",
            &["opaque-code"],
        ),
        ("curl x | python3 -m json.tool", &[]),
        ("curl -o x.tgz https://x", &[]),
        ("curl x | grep sh", &[]),
        ("echo curl x | sh", &[]), // runs `curl x`, which prints a page
    ]);
}

#[test]
fn write_etc() {
    check(&[
        ("echo x > /etc/passwd", &["write-etc"]),
        ("echo x >> /etc/hosts", &["write-etc"]),
        ("echo x >| /etc/hosts", &["write-etc"]),
        ("ls &> /etc/x", &["write-etc"]),
        ("ls 2> /etc/x", &["write-etc"]),
        ("exec 3> /etc/x", &["write-etc"]),
        ("cat <> /etc/x", &["write-etc"]),
        ("{ echo x; } > /etc/x", &["write-etc"]),
        ("echo x > //etc/./passwd", &["write-etc"]),
        ("echo x > /tmp/../etc/passwd", &["write-etc"]),
        ("echo x > /e*/passwd", &["write-etc"]),
        ("echo x > \"/etc/$f\"", &["write-etc"]),
        (
            "echo 'x ALL=(ALL) NOPASSWD:ALL' | sudo tee -a /etc/sudoers",
            &["write-etc"],
        ),
        ("tee /etc/x < y", &["write-etc"]),
        ("cp x /etc/", &["write-etc"]),
        ("cp -t /etc x y", &["write-etc"]),
        ("sudo cp -r conf/ /etc/nginx/", &["write-etc"]),
        ("mv /etc/hosts /tmp/", &["write-etc"]),
        ("install -m 644 x /etc/x", &["write-etc"]),
        ("ln -sf /tmp/x /etc/resolv.conf", &["write-etc"]),
        ("rsync -a conf/ /etc/app/", &["write-etc"]),
        ("sed -i 's/a/b/' /etc/ssh/sshd_config", &["write-etc"]),
        ("sed -i.bak -e 's/a/b/' /etc/x", &["write-etc"]),
        ("sed --in-place 's/a/b/' /etc/x", &["write-etc"]),
        ("perl -pi -e 's/a/b/' /etc/x", &["write-etc", "opaque-code"]),
        ("chmod 777 /etc/shadow", &["write-etc"]),
        ("chown -R me /etc", &["write-etc"]),
        ("truncate -s 0 /etc/motd", &["write-etc"]),
        ("touch /etc/nologin", &["write-etc"]),
        ("rm /etc/passwd", &["write-etc"]),
        ("rm -r /etc/nginx", &["write-etc"]),
        ("touch -d yesterday /etc/x", &["write-etc"]),
        ("mkdir -m 700 /etc/x", &["write-etc"]),
        ("perl -i -E 'say 1' /etc/x", &["write-etc", "opaque-code"]),
        ("sed -n -i -e p /etc/x", &["write-etc"]),
        ("rsync -e ssh -a conf/ /etc/app/", &["write-etc"]),
        ("rsync -a conf/ host:/etc/app/", &[]), // another host's /etc
        ("dd if=x of=/etc/x", &["write-etc"]),
        ("sudoedit /etc/hosts", &["write-etc", "opaque-code"]),
        ("sudo -e /etc/hosts", &["write-etc"]),
        ("vim /etc/hosts", &["write-etc", "opaque-code"]),
        ("visudo", &["write-etc"]),
        ("useradd mallory", &["write-etc"]),
        ("sudo usermod -aG sudo me", &["write-etc"]),
        // Fine.
        ("ls -la /etc", &[]),
        ("cat /etc/hosts", &[]),
        ("grep root /etc/passwd", &[]),
        ("cp /etc/hosts /tmp/", &[]),
        ("rsync -a /etc/ backup/", &[]),
        ("sed 's/a/b/' /etc/hosts", &[]),
        ("sed -n 1p /etc/hosts", &[]),
        ("echo x > etc/passwd", &[]), // relative: the working directory is unknown
        ("echo /etc/passwd", &[]),
        ("diff /etc/a /etc/b > /tmp/d", &[]),
        ("vim -R /etc/hosts", &["opaque-code"]), // an editor reading commands
        ("visudo -c", &[]),
        ("tee -a /tmp/log", &[]),
        ("ln -s /etc/passwd /tmp/p", &[]),
    ]);
}

#[test]
fn dynamic_commands() {
    check(&[
        ("a=rm; $a -rf /", &["dynamic-command"]),
        ("$CMD args", &["dynamic-command"]),
        ("\"$CMD\" args", &["dynamic-command"]),
        ("${CMD:-rm} -rf /", &["dynamic-command"]),
        ("\"$(echo rm)\" -rf /", &["dynamic-command"]),
        ("`echo rm` -rf /", &["dynamic-command"]),
        ("sudo $CMD", &["dynamic-command"]),
        ("xargs $CMD", &["dynamic-command"]),
        ("r*m -rf /", &["dynamic-command"]), // a glob picks the program
        ("eval \"$x\"", &["dynamic-command"]),
        ("eval $x", &["dynamic-command"]),
        ("sh -c \"$x\"", &["dynamic-command"]),
        ("source ~/.bashrc", &["opaque-code"]),
        (". ./env.sh", &["opaque-code"]),
        ("bash deploy.sh", &["opaque-code"]),
        ("sudo sh /tmp/x.sh", &["opaque-code"]),
        ("cat x.sh | bash", &["opaque-code"]),
        ("bash < x.sh", &["opaque-code"]),
        ("ssh host \"$CMD\"", &["dynamic-command"]),
        // Fine.
        ("echo $HOME", &[]),
        ("ls \"$dir\"", &[]),
        ("./deploy.sh", &[]), // a named program: policies list it in `commands:`
        ("bash", &[]),
        ("sudo -i", &[]),
        ("command -v rm", &[]),
        ("x=1", &[]),
        ("export PATH=$PATH:/opt/bin", &[]),
    ]);
}
