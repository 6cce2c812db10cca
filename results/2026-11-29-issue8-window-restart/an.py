import re,sys,collections
fd=None; t0=None; per=collections.defaultdict(list); sizes=collections.Counter()
for l in open(sys.argv[1]):
    m=re.match(r'\s*([\d.]+):\s+syscalls:sys_(enter|exit)_(sendmsg|sendto):\s+(.*)',l)
    if not m: continue
    t=float(m[1])
    if m[2]=='enter':
        fd=int(re.search(r'fd: (0x[0-9a-f]+|\d+)',m[4])[1],0); t0=t
    else:
        r=int(re.search(r'0x[0-9a-f]+|-?\d+',m[4])[0],0)
        if r>0 and fd is not None:
            k=round(r/151); per[fd].append((t0,k)); sizes[k]+=1
tot=sum(sizes.values()); fr=sum(k*c for k,c in sizes.items())
print("writes",tot,"frames",fr,"frames/write %.2f"%(fr/tot))
print(sorted(sizes.items())[:40])
gaps=collections.Counter()
for f,xs in per.items():
    for (a,k),(b,_) in zip(xs,xs[1:]): gaps[min(int((b-a)*2000)/2,12)]+=1
print("gap ms histogram",sorted(gaps.items()))
singles=collections.Counter()
for f,xs in per.items():
    singles[f]=sum(1 for _,k in xs if k==1)
print("singles by fd (top)", singles.most_common(6), "fds", len(per))
