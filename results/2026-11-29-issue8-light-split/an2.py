import re,sys,statistics as st
ev=[]
for l in open(sys.argv[1]):
    m=re.match(r'\s*([\d.]+):\s+syscalls:sys_(enter|exit)_(sendto|sendmsg):',l)
    if m: ev.append((float(m[1]),m[2]))
durs=[];gaps=[];last_exit=None
for i in range(len(ev)-1):
    if ev[i][1]=='enter' and ev[i+1][1]=='exit':
        durs.append((ev[i+1][0]-ev[i][0])*1e6)
        if last_exit is not None: gaps.append((ev[i][0]-last_exit)*1e6)
        last_exit=ev[i+1][0]
durs.sort(); gaps.sort()
q=lambda a,p: a[int(len(a)*p)]
print(f"sends {len(durs)}  duration us p10 {q(durs,.1):.1f} p50 {q(durs,.5):.1f} p90 {q(durs,.9):.1f} mean {st.mean(durs):.1f}")
small=[g for g in gaps if g<200]
print(f"gap to previous send us p10 {q(gaps,.1):.1f} p50 {q(gaps,.5):.1f} p90 {q(gaps,.9):.1f}; gaps<200us: {len(small)} mean {st.mean(small):.1f}")
