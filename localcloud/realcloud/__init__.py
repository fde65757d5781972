"""realcloud: a real OpenStack control plane for tests, the oracle `localcloud` is checked against.

OpenStack Zed from Debian 12's packages (keystone 22, glance 25, placement 8, nova 26,
neutron 21, cinder 21) with MariaDB, RabbitMQ and memcached, in ONE systemd Docker container
(`realcloud`, 10.89.9.2 on the Docker network `realcloud`). Nothing is installed on the host;
the image is built once per machine and cached by a hash of its inputs (image.py).

The API code, schedulers, quotas, state machines, volume attachments and snapshots are the real
ones; only what would need hardware is replaced by the drivers OpenStack's own functional
tests use, all shipped in Debian's python3-* packages:

- Nova: `fake.FakeDriver` (nova/virt/fake.py): servers go ACTIVE without booting anything;
  nova-compute's host is `host-ovs-filter-active`. Its snapshot uploads nothing, so the
  driver is files/.../nova/virt/realcloud_fake.py's SnapshotUploadingFakeDriver: the same
  with a snapshot that uploads a small raw image with the metadata libvirt's gives (the
  image-backed createImage then ends `active`, as on a real cloud).
- Neutron: ML2 with the `test` mechanism driver
  (neutron/tests/unit/plugins/ml2/drivers/mechanism_test.py), which binds ports ACTIVE on
  that host; tenant networks are VXLAN segments, the external one flat; routers and floating
  IPs exist in the API only (no agents). Nova hears of port and floating IP changes through
  Neutron's nova notifier, as on a real cloud, so a floating IP reaches a server's
  `addresses` a few seconds after it is associated.
- Cinder: `cinder.tests.fake_driver.FakeLoggingVolumeDriver`: volumes, snapshots and
  attachments without storage; a volume made from an image really downloads and converts
  the image (LVM's copy, into a file under the container's /dev/mapper).

Why: `localcloud` is this project's own code and can be wrong in the same way as the
collection it tests; Zed is also what many research clouds run (Nova microversion 2.93 at
most). The command is `realcloud up | down | status` (cli.py).
"""
