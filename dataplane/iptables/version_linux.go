/*
Copyright 2026 The svcplane Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package iptables

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"unsafe"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/svcplane/svcplane/dataplane/model"
)

var _ TableVersioner = &Exec{}

// TableVersion implements TableVersioner for the legacy and nft variants, asking
// the kernel directly, in the agent's own network namespace: no tool runs, and
// nothing is copied but a few numbers.
//
//   - iptables-legacy: IPT_SO_GET_INFO (IP6T_SO_GET_INFO for IPv6), the call
//     iptables itself starts with, returns the table's number of entries and
//     size in bytes, which any flush, deletion or added rule changes.
//   - iptables-nft: NFT_MSG_GETGEN returns the generation of the namespace's
//     nf_tables rule set, which every change of any table bumps.
//
// The system's tools (Variant "") are the implementation their iptables links to
// (Debian's alternatives: xtables-legacy-multi or xtables-nft-multi). ErrNoVersion
// when the Exec reaches another namespace (Prefix) or the implementation is not
// known.
func (e *Exec) TableVersion(ctx context.Context, family model.Family, table Table) (string, error) {
	if len(e.Prefix) > 0 {
		return "", ErrNoVersion
	}
	variant := e.Variant
	if variant == "" {
		variant = systemVariant()
	}
	switch variant {
	case VariantLegacy:
		entries, size, err := xtablesInfo(family, table)
		if errors.Is(err, unix.ENOENT) {
			return "absent", nil // the table was never used in this namespace
		}
		if err != nil {
			return "", fmt.Errorf("reading the %s table's size: %w", table, err)
		}
		return fmt.Sprintf("%d/%d", entries, size), nil
	case VariantNFT:
		gen, err := nftGeneration()
		if err != nil {
			return "", fmt.Errorf("reading the nf_tables generation: %w", err)
		}
		return fmt.Sprintf("gen %d", gen), nil
	}
	return "", ErrNoVersion
}

// The kernel's x_tables ABI (linux/netfilter_ipv4/ip_tables.h): IPT_SO_GET_INFO
// and IP6T_SO_GET_INFO are both 64 (IPT_BASE_CTL), and struct ipt_getinfo,
// like ip6t_getinfo, is name[32], valid_hooks, hook_entry[5], underflow[5],
// num_entries and size, all __u32 in host byte order: 32+4+20+20+4+4 bytes.
const (
	soGetInfo         = 64
	getInfoSize       = 84
	getInfoNumEntries = 76
	getInfoSizeOffset = 80
)

// xtablesInfo returns the number of entries and the size of a legacy table.
func xtablesInfo(family model.Family, table Table) (entries, size uint32, err error) {
	domain, level := unix.AF_INET, unix.IPPROTO_IP
	if family == model.IPv6 {
		domain, level = unix.AF_INET6, unix.IPPROTO_IPV6
	}
	fd, err := unix.Socket(domain, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = unix.Close(fd) }()
	var info [getInfoSize]byte
	copy(info[:31], table)
	n := uint32(len(info))
	if _, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), soGetInfo,
		uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&n)), 0); errno != 0 {
		return 0, 0, errno
	}
	native := binary.NativeEndian
	return native.Uint32(info[getInfoNumEntries:]), native.Uint32(info[getInfoSizeOffset:]), nil
}

// nf_tables over nfnetlink (linux/netfilter/nfnetlink.h, nf_tables.h).
const (
	nfnlSubsysNFTables = 10
	nftMsgNewGen       = 15
	nftMsgGetGen       = 16
	nftaGenID          = 1
)

// nftGeneration returns the generation of the network namespace's nf_tables rule
// set.
func nftGeneration() (uint32, error) {
	req := nl.NewNetlinkRequest(nfnlSubsysNFTables<<8|nftMsgGetGen, 0)
	req.AddData(&nl.Nfgenmsg{NfgenFamily: unix.AF_UNSPEC, Version: nl.NFNETLINK_V0})
	msgs, err := req.Execute(unix.NETLINK_NETFILTER, nfnlSubsysNFTables<<8|nftMsgNewGen)
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		if len(m) < nl.SizeofNfgenmsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[nl.SizeofNfgenmsg:])
		if err != nil {
			return 0, err
		}
		for _, a := range attrs {
			if a.Attr.Type == nftaGenID && len(a.Value) == 4 {
				return binary.BigEndian.Uint32(a.Value), nil
			}
		}
	}
	return 0, errors.New("no generation in the kernel's answer")
}

// systemVariant returns the variant the system's iptables is, from the program its
// name links to, or "" when that does not say.
var systemVariant = sync.OnceValue(func() string {
	path, err := exec.LookPath("iptables")
	if err != nil {
		return ""
	}
	if path, err = filepath.EvalSymlinks(path); err != nil {
		return ""
	}
	switch filepath.Base(path) {
	case "xtables-legacy-multi":
		return VariantLegacy
	case "xtables-nft-multi":
		return VariantNFT
	}
	return ""
})
