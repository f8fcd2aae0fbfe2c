package org.jtune.autograd;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.jtune.io.safetensors.DType;
import org.jtune.kernel.Matrix;
import org.jtune.kernel.TestMatrices;
import org.junit.jupiter.api.Test;

/** The tiled transposes against the definition, W^T(c, r) = W(r, c), on shapes that leave partial tiles. */
class MatricesTest {
    private static final int[][] SHAPES = {{1, 1}, {1, 37}, {37, 1}, {33, 65}, {70, 129}, {256, 96}};

    @Test
    void weightsTransposeInEveryDtypeAndLayout() {
        Random rnd = new Random(11);
        for (int[] s : SHAPES) {
            int rows = s[0], cols = s[1];
            List<Matrix> ws = new ArrayList<>();
            ws.add(Matrix.ofFloats(TestMatrices.randomFloats(rnd, rows * cols), rows, cols));   // a float[] master
            for (DType dt : new DType[] {DType.F32, DType.BF16, DType.F16}) {
                ws.add(TestMatrices.matrix(rnd, dt, rows, cols, false));
                ws.add(TestMatrices.matrix(rnd, dt, rows, cols, true));
            }
            if (cols > 64) {
                ws.add(TestMatrices.matrix(rnd, DType.BF16, rows, cols, true).withStrips(64));
            }
            if (cols % 32 == 0) {
                ws.add(TestMatrices.i8Matrix(rnd, rows, cols, 32, true));
                ws.add(TestMatrices.i8Matrix(rnd, rows, cols, 32, true).withRowPairs());
                ws.add(TestMatrices.i4Matrix(rnd, rows, cols, 32, false, true));
            }
            for (Matrix w : ws) {
                Matrix t = Matrices.transpose(w, null);
                String what = w.dtype() + (w.strip() > 0 ? " strips " : w.rowPairs() ? " pairs " : " ") + rows + "x" + cols;
                assertEquals(cols, t.rows(), what);
                assertEquals(rows, t.cols(), what);
                for (int r = 0; r < rows; r++) {
                    for (int c = 0; c < cols; c++) {
                        assertEquals(w.get(r, c), t.get(c, r), what + " at " + r + "," + c);
                    }
                }
                if (w.data().heapBase().orElse(null) instanceof float[] master) {
                    // a master after an optimizer step: its transpose is refreshed in the memory it had
                    master[master.length - 1] += 1f;
                    Matrix again = Matrices.transpose(w, t);
                    assertEquals(t.data().heapBase().orElseThrow(), again.data().heapBase().orElseThrow(), what);
                    assertEquals(w.get(rows - 1, cols - 1), again.get(cols - 1, rows - 1), what);
                }
            }
        }
    }
}
