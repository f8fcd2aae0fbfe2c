# Regenerates MatmulF32/BF16/F16.java from MatmulTemplate.java.txt: run from this directory with python3 gen_matmul.py
import re
t=open('MatmulTemplate.java.txt').read()
SHORTS='(IntVector) ShortVector.fromMemorySegment(VectorKernels.S, w, {0}, LE).convertShape(VectorOperators.S2I, VectorKernels.I, 0)'
decl={
 'F32':'FloatVector {v} = FloatVector.fromMemorySegment(VectorKernels.F, w, {e}, LE);',
 'BF16':'FloatVector {v} = ((IntVector) ShortVector.fromMemorySegment(VectorKernels.S, w, {e}, LE).convertShape(VectorOperators.S2I, VectorKernels.I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();',
 'F16':'IntVector {v}h = (IntVector) ShortVector.fromMemorySegment(VectorKernels.S, w, {e}, LE).convertShape(VectorOperators.S2I, VectorKernels.I, 0);\n{ind}FloatVector {v} = {v}h.lanewise(VectorOperators.LSHL, 13).and(0x8FFFE000).or({v}h.and(0x7fff).add(0x400).lanewise(VectorOperators.LSHR, 15).neg().and(0x7f800000)).reinterpretAsFloats().mul(0x1p112f);',
}
def sections(text,dt):
    # //@IF DT ... [//@ELSE ...] //@END: the first part for that dtype only, the second for the others
    out=[];keep=[True]
    for line in text.split('\n'):
        m=re.match(r'^//@IF (\w+)$',line)
        if m: keep.append(m.group(1)==dt); continue
        if line=='//@ELSE': keep[-1]=not keep[-1]; continue
        if line=='//@END': keep.pop(); continue
        if all(keep): out.append(line)
    return '\n'.join(out)
for dt,esz,at in [('F32',4,'f32At'),('BF16',2,'bf16At'),('F16',2,'f16At')]:
    s=sections(t,dt).replace('@DT@',dt).replace('@ESZ@',str(esz)).replace('@AT@',at)
    lines=[];n=0
    for line in s.split('\n'):
        m=re.match(r'^(\s*)(.*?)@LOAD<(.*?)>@(.*)$',line)
        r=re.match(r'^(\s*)float (\w+) = @ROWSUM<(.*)>@;$',line)
        if m:
            n+=1;ind,pre,e,post=m.groups();v=f'wv{n}'
            lines.append(ind+decl[dt].format(v=v,e=e,ind=ind))
            lines.append(ind+pre+v+post)
        elif r:
            # a row's lane sum: the register fold, except for F16, whose long widening leaves C2 past its node
            # budget for inlining by then (a fold left as a call boxes its vectors); same bits either way
            ind,var,e=r.groups()
            if dt=='F16':
                lines.append(f'{ind}({e}).intoArray(sc, 0);')
                lines.append(f'{ind}float {var} = VectorMath.sumLanes(sc, 0);')
            else: lines.append(f'{ind}float {var} = VectorMath.sum({e});')
        else: lines.append(line)
    s='\n'.join(lines)
    if dt=='F32': s=s.replace('import jdk.incubator.vector.IntVector;\nimport jdk.incubator.vector.ShortVector;\n','')
    open(f'../../../../../../main/java/org/jtune/kernel/Matmul{dt}.java','w').write(s)

# MatmulI8.java from MatmulI8Template.java.txt: @LOAD<byteOffset>@ widens L int8 weights to f32 (exact).
# B2I then I2F, not B2F: on AVX-512 (JDK 25) the direct byte-to-float convertShape made the prefill tile
# about 3x slower (33 vs 93 GFLOP/s at 8192x4096, tokens=128); sign-extend + cvtdq2ps is what x86 has.
# Where the float species has fewer than 8 lanes there is no byte species of that lane count (the
# smallest is 64 bits), so the load is masked to the first L lanes; the branch is on a static final and folds.
I8='FloatVector {v} = (FloatVector) (VectorKernels.I8_NARROW ? ByteVector.fromMemorySegment(VectorKernels.B, w, {e}, LE, VectorKernels.BM) : ByteVector.fromMemorySegment(VectorKernels.B, w, {e}, LE)).convertShape(VectorOperators.B2I, VectorKernels.I, 0).convert(VectorOperators.I2F, 0);'
s=open('MatmulI8Template.java.txt').read()
lines=[];n=0
for line in s.split('\n'):
    m=re.match(r'^(\s*)(.*?)@LOAD<(.*?)>@(.*)$',line)
    if m:
        n+=1;ind,pre,e,post=m.groups();v=f'wv{n}'
        lines.append(ind+I8.format(v=v,e=e))
        lines.append(ind+pre+v+post)
    else: lines.append(line)
open('../../../../../../main/java/org/jtune/kernel/MatmulI8.java','w').write('\n'.join(lines))
